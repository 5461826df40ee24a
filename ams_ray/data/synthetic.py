"""The embedded default: deterministic street-like videos whose appearance drifts.

Why this shape: AMS pays off when a small model cannot fit every scene at once but can fit
the one in front of it. Each scene here keeps the same layout rules (sky above buildings,
road below the horizon, textures per class) that a generic model can learn, while the
colours of every class are re-drawn per scene and drift within it, so colour, the cheapest
cue for a tiny network, only helps once the model has seen the current scene.

Speed: each scene's static background is rendered once on a panorama wider than the
frame; a frame is a column slice of it (camera pan), a per-class colour drift, the moving
objects and a lighting gain. That keeps generation well above 500 frames/s at 128x256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("road", "sidewalk", "building", "vegetation", "sky", "person", "car")
NUM_CLASSES = len(CLASS_NAMES)
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, PERSON, CAR = range(NUM_CLASSES)

# Generic colour of each class; a scene mixes these with random colours (see `_palette`).
_PROTOTYPES = np.array(
    [[90, 90, 95], [160, 150, 140], [150, 110, 90], [60, 130, 50], [120, 170, 230], [200, 60, 60], [40, 60, 160]],
    dtype=np.float32,
)
PANORAMA_FACTOR = 4  # panorama width / frame width


@dataclass(frozen=True)
class MovingObject:
    cls: int
    row_bottom: float  # fraction of frame height where the object stands
    height: float  # fraction of frame height
    width: float  # fraction of frame width
    x0: float  # panorama x (fraction of frame width) at scene start
    speed: float  # frame widths per second, in panorama coordinates
    colour: np.ndarray


@dataclass
class Scene:
    start_s: float
    duration_s: float
    panorama: np.ndarray  # (H, W*PANORAMA_FACTOR, 3) float32
    panorama_labels: np.ndarray  # (H, W*PANORAMA_FACTOR) uint8
    horizon: int  # rows from here down (the ground) do not pan
    pan_speed: float  # panorama pixels per second
    drift: np.ndarray  # (NUM_CLASSES, 3): colour change per class over the whole scene
    light_start: float
    light_end: float
    objects: list[MovingObject]


STATIC_SCENE_S = 3600.0  # a fixed camera's colours and light drift over an hour, not over one short video
SCENE_KINDS: dict[str, tuple[float, float] | None] = {
    "mixed": (30.0, 120.0),  # the default world: a new scene every half minute to two minutes
    "static": None,  # a fixed camera over one scene for the whole video
    "slow": (120.0, 240.0),  # a new scene every few minutes
    "fast": (20.0, 40.0),  # a pan-tilt camera, or a busy one: a new scene every 20-40 s
}


def scene_range(kind: str) -> tuple[float, float] | None:
    """Seconds between scene changes for a kind of camera (None: the scene never changes)."""
    if kind not in SCENE_KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(SCENE_KINDS)}")
    return SCENE_KINDS[kind]


class SyntheticVideo:
    """A drifting-scene video: `frame(i)` and `labels(i)` are pure functions of (seed, i).

    `appearance_spread` in [0, 1] is how far scene colours stray from each class's prototype:
    0 makes every scene look alike (nothing to adapt to), 1 makes colour uninformative.
    """

    def __init__(
        self,
        seed: int,
        duration_s: float = 300.0,
        fps: float = 15.0,
        height: int = 128,
        width: int = 256,
        appearance_spread: float = 1.0,
        scene_range_s: tuple[float, float] | None = SCENE_KINDS["mixed"],
    ) -> None:
        """`scene_range_s`: seconds between scene changes, drawn uniformly; None keeps one scene."""
        if duration_s <= 0 or fps <= 0:
            raise ValueError(f"duration_s and fps must be positive, got {duration_s} and {fps}")
        self.seed, self.duration_s, self.fps = seed, duration_s, fps
        self.height, self.width = height, width
        self.appearance_spread = appearance_spread
        self.num_frames = int(round(duration_s * fps))
        self._rng = np.random.default_rng(seed)
        self._scene_bounds = self._draw_scene_bounds(scene_range_s)
        self._scenes: dict[int, Scene] = {}
        rows = np.arange(height, dtype=np.float32)[:, None]
        self._sky_fade = 1.0 + 0.25 * (rows / height)  # lighter towards the horizon

    # ----------------------------------------------------------------- scenes
    def _draw_scene_bounds(self, scene_range_s: tuple[float, float] | None) -> list[float]:
        bounds, t = [0.0], 0.0
        if scene_range_s is None:
            return [0.0, max(self.duration_s, STATIC_SCENE_S)]  # one scene, drifting as slowly as a day's light
        while t < self.duration_s:
            t += float(self._rng.uniform(*scene_range_s))
            bounds.append(t)
        return bounds

    @property
    def scene_starts_s(self) -> list[float]:
        return [b for b in self._scene_bounds[:-1] if b < self.duration_s]

    def scene_index(self, t: float) -> int:
        return int(np.searchsorted(self._scene_bounds, t, side="right") - 1)

    def _scene(self, index: int) -> Scene:
        if index not in self._scenes:
            self._scenes = {index: self._build_scene(index)}  # keep one: scenes are visited in order
        return self._scenes[index]

    def _palette(self, rng: np.random.Generator) -> np.ndarray:
        random_colours = rng.uniform(20, 235, size=(NUM_CLASSES, 3)).astype(np.float32)
        mix = self.appearance_spread * rng.uniform(0.6, 1.0, size=(NUM_CLASSES, 1))
        return (1 - mix) * _PROTOTYPES + mix * random_colours

    def _build_scene(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, index])
        h, w = self.height, self.width
        pw = w * PANORAMA_FACTOR
        palette = self._palette(rng)
        horizon = int(h * rng.uniform(0.3, 0.7))
        labels = np.full((h, pw), SKY, dtype=np.uint8)
        rows, cols = np.indices((h, pw))

        # Skyline: blocks of buildings of random width and height, gaps filled by trees.
        skyline = np.empty(pw, dtype=np.int64)
        is_tree = np.zeros(pw, dtype=bool)
        tree_share = rng.uniform(0.1, 0.6)
        x = 0
        while x < pw:
            block = int(rng.integers(w // 10, w // 3))
            skyline[x : x + block] = int(rng.uniform(-0.2, 0.8) * horizon)  # < 0: towers hide the sky
            is_tree[x : x + block] = rng.random() < tree_share
            x += block
        above = rows < horizon
        labels[above & (rows >= skyline) & ~is_tree] = BUILDING
        crown = np.clip(skyline + h // 10, 0, horizon)
        labels[above & (rows >= crown) & is_tree] = VEGETATION

        # Ground: a road trapezoid towards a vanishing point, sidewalks, then grass verges.
        depth = np.clip(rows - horizon, 0, None).astype(np.float32) / max(h - horizon, 1)
        centre = (0.5 + rng.uniform(-0.3, 0.3)) * w
        road_half = (0.08 + 0.55 * depth) * w * rng.uniform(0.5, 1.6)
        walk = road_half * rng.uniform(0.15, 0.8)
        dx = np.abs(((cols % w) - centre))
        below = rows >= horizon
        # What lines the street varies by scene (verges, facades down to the ground, a plaza),
        # and some roads have a planted median: layout alone cannot tell these apart.
        labels[below] = rng.choice([VEGETATION, BUILDING, SIDEWALK], p=[0.5, 0.3, 0.2])
        labels[below & (dx < road_half + walk)] = SIDEWALK
        labels[below & (dx < road_half)] = ROAD
        if rng.random() < 0.3:
            labels[below & (dx < road_half * 0.12)] = VEGETATION

        image = palette[labels]
        texture = self._textures(rng, labels, rows, cols, dx, horizon)
        image *= texture[..., None]
        image[labels == SKY] *= np.broadcast_to(self._sky_fade, (h, pw))[labels == SKY][:, None]

        start = self._scene_bounds[index]
        duration = self._scene_bounds[index + 1] - start
        static = rng.random() < 0.35
        pan_speed = 0.0 if static else float(rng.uniform(4, 30)) * rng.choice([-1, 1])
        objects = self._objects(rng, horizon, few=static)
        drift = rng.normal(0, 45, size=(NUM_CLASSES, 3)).astype(np.float32)
        return Scene(
            start_s=start,
            duration_s=duration,
            panorama=image.astype(np.float32),
            panorama_labels=labels,
            horizon=horizon,
            pan_speed=pan_speed,
            drift=drift,
            light_start=float(rng.uniform(0.7, 1.2)),
            light_end=float(rng.uniform(0.7, 1.2)),
            objects=objects,
        )

    def _textures(self, rng, labels, rows, cols, dx, horizon) -> np.ndarray:
        """Multiplicative texture per class, with the texture *style* re-drawn per scene.

        A fixed style per class (windows only on buildings, say) would let a generic model
        recognise every class from texture alone and leave nothing to adapt; drawing the
        style per scene keeps layout and object shape as the only generic cues.
        """
        h, pw = labels.shape
        coarse = rng.normal(0, 1, size=(h // 8 + 1, pw // 8 + 1)).astype(np.float32)
        fine = rng.normal(0, 1, size=(h, pw)).astype(np.float32)
        period = int(rng.integers(5, 10))
        styles = {
            "grid": np.where(((rows % period) < period // 2) & ((cols % period) < period // 2), 0.6, 1.0),
            "blotches": 1.0 + 0.25 * np.kron(coarse, np.ones((8, 8), np.float32))[:h, :pw] + 0.12 * fine,
            "tiles": np.where(((rows % 6) == 0) | ((cols % 10) == 0), 0.75, 1.0),
            "stripes": np.where((cols // max(2, period // 2)) % 2 == 0, 0.8, 1.1),
            "grain": 1.0 + 0.15 * fine,
            "smooth": np.ones((h, pw), np.float32),
        }
        names = list(styles)
        tex = np.ones((h, pw), dtype=np.float32)
        for cls in (ROAD, SIDEWALK, BUILDING, VEGETATION, SKY):
            mask = labels == cls
            tex[mask] = styles[names[int(rng.integers(len(names)))]][mask]
        dashes = (labels == ROAD) & (dx < 1.5) & ((rows // 4) % 2 == 0) & (rows > horizon + 2)
        tex[dashes] = 2.0
        return np.clip(tex, 0.2, 2.5)

    def _objects(self, rng: np.random.Generator, horizon: int, few: bool) -> list[MovingObject]:
        """Cars and pedestrians; each scene has its own vehicle and clothing colours, so a
        model adapted to the scene can recognise them by colour as well as by shape."""
        h = self.height
        ground = (h - horizon) / h
        count = int(rng.integers(1, 3)) if few else int(rng.integers(3, 8))
        base_colour = {cls: rng.uniform(30, 225, size=3) for cls in (PERSON, CAR)}
        objects = []
        for _ in range(count):
            cls = PERSON if rng.random() < 0.45 else CAR
            depth = rng.uniform(0.25, 1.0)
            bottom = horizon / h + depth * ground
            scale = 0.4 + depth
            if cls == CAR:
                size_h, size_w, speed = 0.12 * scale, 0.16 * scale, rng.uniform(0.05, 0.25)
            else:
                size_h, size_w, speed = 0.16 * scale, 0.035 * scale, rng.uniform(0.01, 0.05)
            colour = np.clip(base_colour[cls] + rng.normal(0, 15, size=3), 0, 255).astype(np.float32)
            objects.append(
                MovingObject(cls, bottom, size_h, size_w, rng.uniform(0, PANORAMA_FACTOR),
                             speed * rng.choice([-1, 1]), colour)
            )
        return objects

    # ----------------------------------------------------------------- frames
    def render(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame and exact labels together, from one rendering."""
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} outside video of {self.num_frames} frames")
        t = index / self.fps
        scene = self._scene(self.scene_index(t))
        h, w = self.height, self.width
        pw = w * PANORAMA_FACTOR
        progress = (t - scene.start_s) / scene.duration_s
        offset = int(round(scene.pan_speed * (t - scene.start_s))) % pw
        cols = (np.arange(w) + offset) % pw
        sky_rows, ground_rows = slice(0, scene.horizon), slice(scene.horizon, h)
        labels = np.concatenate(
            [scene.panorama_labels[sky_rows, cols], scene.panorama_labels[ground_rows, :w]]
        )
        image = np.concatenate([scene.panorama[sky_rows, cols], scene.panorama[ground_rows, :w]])
        image += (progress * scene.drift)[labels]
        for obj in scene.objects:
            self._draw_object(image, labels, obj, t - scene.start_s, offset)
        light = scene.light_start + (scene.light_end - scene.light_start) * progress
        np.multiply(image, light, out=image)
        return np.clip(image, 0, 255).astype(np.uint8), labels

    def _draw_object(self, image, labels, obj: MovingObject, dt: float, offset: int) -> None:
        h, w = self.height, self.width
        pw = w * PANORAMA_FACTOR
        x_world = (obj.x0 + obj.speed * dt) * w
        x_left = int(round((x_world - offset) % pw))
        width = max(2, int(obj.width * w))
        if x_left >= w:  # off screen (panorama coordinates wrap)
            return
        bottom = min(h, int(obj.row_bottom * h))
        top = max(0, bottom - max(3, int(obj.height * h)))
        x_right = min(w, x_left + width)
        labels[top:bottom, x_left:x_right] = obj.cls
        image[top:bottom, x_left:x_right] = obj.colour
        band = max(1, (bottom - top) // 4)
        if obj.cls == CAR:  # dark windows on top, wheels at the bottom
            image[top : top + band, x_left:x_right] *= 0.35
            image[bottom - band // 2 - 1 : bottom, x_left:x_right] = 25.0
        else:  # a head: a lighter block on top
            image[top : top + band, x_left:x_right] = (230.0, 190.0, 160.0)

    def frame(self, index: int) -> np.ndarray:
        return self.render(index)[0]

    def labels(self, index: int) -> np.ndarray:
        return self.render(index)[1]

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        for index in range(start, stop):
            yield self.render(index)
