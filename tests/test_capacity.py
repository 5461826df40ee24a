"""Demand against capacity, and the verdict on a run that helped no device."""

from ams_ray.fleet.capacity import (
    RunShape,
    TeacherLoad,
    TrainerLoad,
    no_update_reason,
    plan_warnings,
    rounds_capacity,
    teacher_warnings,
    trainer_warnings,
)

SHAPE = RunShape(streams=64, speed=0.125, period_s=10.0, teacher_replicas=1)


def _teacher(training: int, scoring: int, served: int, shed: int, busy_s: float, elapsed_s: float = 100.0):
    before = {"arrived": {"training": 0, "scoring": 0}, "served": {"training": 0, "scoring": 0}, "shed": 0,
              "busy_s": 0.0, "uptime_s": 50.0}
    after = {"arrived": {"training": training, "scoring": scoring}, "served": {"training": served, "scoring": 0},
             "shed": shed, "busy_s": busy_s, "uptime_s": 50.0 + elapsed_s}
    return TeacherLoad.between(before, after)


def test_a_teacher_asked_more_training_frames_than_it_labels_says_what_speed_and_replicas_fit():
    load = _teacher(training=400, scoring=100, served=170, shed=60, busy_s=100.0)
    (warning,) = teacher_warnings(load, SHAPE)
    assert load.capacity_fps == 1.7 and load.training_demand_fps == 4.0
    assert warning.startswith("teacher over capacity: the streams ask 4.00 training frames/s")
    assert "--speed 0.0425" in warning  # 0.125 x 0.8 x 1.7 / 4
    assert "--teacher-replicas 3" in warning  # ceil(4 / (0.8 x 1.7))


def test_a_teacher_that_keeps_up_with_training_but_sheds_scoring_says_so():
    (warning,) = teacher_warnings(_teacher(training=100, scoring=200, served=180, shed=50, busy_s=90.0), SHAPE)
    assert warning.startswith("teacher saturated: 50 scoring frames (25%) were shed")


def test_a_teacher_within_capacity_says_nothing():
    assert teacher_warnings(_teacher(training=100, scoring=20, served=120, shed=0, busy_s=30.0), SHAPE) == []


def test_trainers_that_cannot_train_every_due_round_say_what_fits():
    # 64 streams x 0.125 / 10 s = 0.8 rounds/s at 3 CPU-s each: 2.4 slots busy against 2
    (warning,) = trainer_warnings(TrainerLoad(rounds=10, train_cpu_s=30.0, train_s=35.0, slots=2, shed_chunks=0,
                                              rate_cuts=0), SHAPE)
    assert "2.4 training slots busy against 2" in warning
    assert "--speed 0.0833" in warning and "--clients 42" in warning
    assert trainer_warnings(TrainerLoad(10, 10.0, 12.0, 2, 0, 0), SHAPE) == []
    assert trainer_warnings(TrainerLoad(0, 0.0, 0.0, 2, 0, 0), SHAPE) == [], "nothing measured yet"


def test_trainers_whose_rounds_wait_for_a_core_say_so():
    """This machine's 64-stream run: 1.36 CPU-s a round fits two cores (1.1 busy), but a round
    took 6.25 s of wall time, so 5 threads would have to train at once. Its 32-stream run
    (3.2 s for 1.55 CPU-s, 0.4 rounds due a second) kept up, and says nothing."""
    (warning,) = trainer_warnings(TrainerLoad(rounds=100, train_cpu_s=136.0, train_s=625.0, slots=2, shed_chunks=0,
                                              rate_cuts=0), SHAPE)
    assert warning.startswith("trainers short of CPU: a round takes 6.2 s of wall time for 1.36 CPU-s (its thread "
                              "gets a core 22% of the time")
    assert "so 5.0 training threads would have to run at once against 2" in warning and "--speed 0.04" in warning
    half = RunShape(streams=32, speed=0.125, period_s=10.0, teacher_replicas=1)
    assert trainer_warnings(TrainerLoad(100, 155.0, 320.0, 2, 0, 0), half) == []


def test_a_run_where_no_stream_applied_an_update_names_why():
    unlabelled = {"completed": 2, "streams_without_update": 2, "rounds": 0, "teacher_training_frames": 0,
                  "unlabelled_chunks": 6, "shed_chunks": 0, "capacity_warnings": ["teacher over capacity: ..."]}
    reason = no_update_reason(unlabelled)
    assert reason.startswith("no stream applied an update (2 completed): no training round ran: the teacher "
                             "labelled no training frame (6 chunks unlabelled, 0 shed)")
    assert reason.endswith("; teacher over capacity: ...")
    lost = {"completed": 3, "streams_without_update": 3, "rounds": 9, "rejected_packets": 9, "packets_missed": 0,
            "poll_failures": 4}
    assert "9 rounds trained, but no packet was applied (9 refused, 0 missed, 4 failed polls)" in no_update_reason(lost)
    assert no_update_reason({**lost, "streams_without_update": 2}) is None
    assert no_update_reason({"completed": 0, "streams_without_update": 0}) is None


def test_a_plan_past_the_calibrated_capacity_or_with_more_hosts_than_cores_says_so_up_front():
    capacity = rounds_capacity([2.0, 2.0, float("nan")])  # two hosts at a round every 2 s; one did not answer
    assert capacity == 1.0
    shape = RunShape(streams=40, speed=0.5, period_s=10.0, teacher_replicas=1)  # 2 rounds due per second
    over, cores = plan_warnings(shape, capacity, hosts=4, cores=2)
    assert "2.00 rounds due per second" in over and "1.00 rounds/s" in over
    assert "--speed 0.2" in over and "--clients 16" in over and "--scheduler gain" in over
    assert "4 training hosts on 2 cores" in cores and "--streams-per-trainer 20" in cores
    assert plan_warnings(RunShape(10, 0.5, 10.0, 1), capacity, hosts=2, cores=2) == []
    assert plan_warnings(shape, rounds_capacity([]), hosts=1, cores=0) == [], "nothing calibrated, nothing said"
