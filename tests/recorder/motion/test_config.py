import itertools
import tomllib

import pytest

from recorder.motion.config import MotionConfig, params_for_sensitivity

SAMPLE = """
[motion]
sensitivity = 7
trigger = "both"
decode = "keyframes"
fps = 4
masks = [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.4], [0.0, 0.4]]]
[[motion.zones]]
name = "gate"
polygon = [[0.5, 0.5], [1.0, 0.5], [1.0, 1.0], [0.5, 1.0]]
[motion.events]
pre_roll_s = 3
[motion.tamper]
video_loss_s = 20.0
[motion.expert]
threshold = 18
"""


def test_from_mapping_parses_every_table():
    cfg = MotionConfig.from_mapping(tomllib.loads(SAMPLE)["motion"])
    assert cfg.sensitivity == 7 and cfg.trigger == "both" and cfg.decode == "keyframes"
    assert cfg.fps == 4.0 and isinstance(cfg.fps, float)
    assert cfg.masks[0][2] == (0.3, 0.4)
    assert cfg.zones[0].name == "gate"
    assert cfg.events.pre_roll_s == 3.0 and cfg.events.post_roll_s == 10.0
    assert cfg.tamper.video_loss_s == 20.0
    params = cfg.params()
    assert params.threshold == 18
    assert params.min_area_fraction == params_for_sensitivity(7).min_area_fraction


def test_defaults_are_valid():
    MotionConfig().validate()
    assert MotionConfig.from_mapping({}) == MotionConfig()


def test_sensitivity_is_monotonic():
    ps = [params_for_sensitivity(s) for s in range(1, 11)]
    assert all(a.threshold > b.threshold for a, b in itertools.pairwise(ps))
    assert all(a.min_area_fraction > b.min_area_fraction for a, b in itertools.pairwise(ps))


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"sensitivity": 11}, "motion.sensitivity"),
        ({"sensitivity": 5.5}, "motion.sensitivity"),
        ({"trigger": "onvif"}, "motion.trigger"),
        ({"decode": "some"}, "motion.decode"),
        ({"fps": 0}, "motion.fps"),
        ({"colour": True}, "motion.colour"),
        (
            {"zones": [{"name": "a", "polygon": [[0, 0], [2, 0], [1, 1]]}]},
            "motion.zones[0].polygon[1]",
        ),
        ({"zones": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}, "motion.zones[0].polygon"),
        ({"masks": "all"}, "motion.masks"),
        ({"expert": {"threshold": "x"}}, "motion.expert.threshold"),
        ({"expert": {"blur_px": 4}}, "motion.expert.blur_px"),
        ({"events": {"pre_roll_s": -1}}, "motion.events.pre_roll_s"),
        ({"tamper": {"scene_change_fraction": 2.0}}, "motion.tamper.scene_change_fraction"),
    ],
)
def test_bad_values_name_the_field(raw, named):
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace(".", r"\.")):
        MotionConfig.from_mapping(raw)


def test_where_prefix_names_the_camera():
    with pytest.raises(ValueError, match=r"cameras\[2\]\.motion\.fps"):
        MotionConfig.from_mapping({"fps": -1}, where="cameras[2].motion")
