import numpy as np

from ams_ray.evaluation.compare import BASELINE_STYLES, format_table, miou_figure
from ams_ray.evaluation.simulate import StreamResult


def _result(name: str, values: list[float], sent: int = 0, applied: int = 0) -> StreamResult:
    times = [float(t) for t in range(len(values))]
    return StreamResult(strategy=name, miou=float(np.mean(values)), miou_vs_teacher=float(np.mean(values)) + 1,
                        teacher_miou=90.0, uplink_kbps=1.0, downlink_kbps=1.0,
                        duration_s=len(values), wall_s=1.0, updates_sent=sent, updates_applied=applied,
                        mean_packet_bytes=100.0, mean_shadow_packet_bytes=90.0, times_s=times, miou_trace=values)


def test_legend_sits_outside_the_curves_and_equal_baselines_both_show():
    flat = [60.0] * 100
    rising = list(np.linspace(60, 80, 100))
    results = [_result("pretrained", flat), _result("one_time", flat), _result("ams_gg10", rising),
               _result("ams_gg10_asr", rising)]
    fig = miou_figure(results, "test")
    fig.canvas.draw()
    ax = fig.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1, "the legend overlaps the plotting area"
    lines = {line.get_label().split(" ")[0]: line for line in ax.get_lines()}
    pretrained, one_time, adapted = lines["pretrained"], lines["one_time"], lines["ams_gg10"]
    assert np.array_equal(pretrained.get_ydata(), one_time.get_ydata())
    assert pretrained.get_zorder() > adapted.get_zorder() and one_time.get_zorder() > adapted.get_zorder()
    # complementary dashes: where the two coincide, each fills the other's gaps
    assert pretrained.get_color() != one_time.get_color()
    offsets = {BASELINE_STYLES[n]["linestyle"][0] for n in ("pretrained", "one_time")}
    assert offsets == {0, 4}
    # equal adaptive curves: the later one is drawn thinner, so the earlier one's edges show
    assert lines["ams_gg10"].get_linewidth() > lines["ams_gg10_asr"].get_linewidth()


def test_table_separates_updates_sent_from_applied():
    table = format_table([_result("one_time", [60.0] * 10, sent=1, applied=0),
                          _result("ams_gg10", [70.0] * 10, sent=3, applied=3)])
    header, _, late, adapted, note = table.splitlines()
    assert header.split()[8:10] == ["sent", "applied"]
    assert late.split()[5:7] == ["1", "0"] and adapted.split()[5:7] == ["3", "3"]
    assert note.startswith("sent > applied: one_time")
