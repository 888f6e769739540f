"""configs/azgo.yaml read into pydantic-settings: defaults, AZGO_SECTION__FIELD overrides, errors by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from azgo_core.config import ConfigError, Settings, is_loopback, load_settings, settings_yaml

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "configs" / "azgo.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("AZGO_") and "__" in key:
            monkeypatch.delenv(key)


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "azgo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_shipped_file_equals_the_documented_defaults():
    # every default is written twice (the model and the file a user edits): they must agree
    assert load_settings(CONFIG) == load_settings(None)


def test_the_library_dataclasses_are_the_one_home_of_each_default_and_bound():
    from azgo_core.params import NetConfig, SearchConfig, SelfPlayConfig, TrainConfig

    # configs/azgo.yaml, read through the settings, gives exactly the library's defaults
    s = load_settings(CONFIG)
    assert s.net_config() == NetConfig()
    assert s.search_config() == SearchConfig()
    assert s.selfplay_config() == SelfPlayConfig()
    assert s.train_config() == TrainConfig()
    # a bound written once refuses a value in both: the dataclass and the settings field
    with pytest.raises(ValueError, match=r"NetConfig.channels must be >= 1, got 0"):
        NetConfig(channels=0)
    with pytest.raises(ConfigError, match=r"model.channels"):
        load_settings(None, model={"channels": 0})
    with pytest.raises(ValueError, match=r"SearchConfig.full_search_prob must be <= 1, got 1.5"):
        SearchConfig(full_search_prob=1.5)
    with pytest.raises(ConfigError, match=r"search.full_search_prob"):
        load_settings(None, search={"full_search_prob": 1.5})
    with pytest.raises(ValueError, match=r"TrainConfig.momentum must be < 1"):
        TrainConfig(momentum=1.0)


def test_seed_knobs_keep_their_names_and_defaults():
    s = load_settings(CONFIG)
    assert s.distributed.batch_size == 100
    assert s.distributed.compression is True
    assert s.distributed.workers == []
    assert s.distributed.load_balancing == "weighted" and s.distributed.worker_weights == {}
    assert s.self_play.games_per_worker == 0
    assert s.self_play.parallel_games >= 1 and s.self_play.batch_size >= 1
    assert s.distributed.sync_interval >= 0


def test_environment_overrides_file_and_nested_lists(tmp_path, monkeypatch):
    path = write(tmp_path, {"distributed": {"batch_size": 20, "compression": True}})
    monkeypatch.setenv("AZGO_DISTRIBUTED__BATCH_SIZE", "50")
    monkeypatch.setenv("AZGO_SELF_PLAY__PARALLEL_GAMES", "7")
    monkeypatch.setenv("AZGO_DISTRIBUTED__WORKERS", '[{"host": "gpu1", "user": "me", "gpu_id": 1, "weight": 2}]')
    s = load_settings(path)
    assert s.distributed.batch_size == 50  # environment beats the file
    assert s.distributed.compression is True  # the file's other fields stay
    assert s.self_play.parallel_games == 7
    assert s.distributed.workers[0].host == "gpu1" and s.distributed.workers[0].gpu_id == 1
    assert s.host_weight("gpu1") == 2


def test_worker_weights_and_even_balancing(tmp_path):
    path = write(tmp_path, {"distributed": {"workers": [{"host": "a", "weight": 3}, {"host": "b"}],
                                            "worker_weights": {"b": 5}}})
    s = load_settings(path)
    assert [s.host_weight(w.host) for w in s.distributed.workers] == [3, 5]
    assert s.host_weight("c") == 1  # a host only named on the command line
    s = load_settings(path, distributed={"load_balancing": "even"})
    assert [s.host_weight(w.host) for w in s.distributed.workers] == [1, 1]


def test_weight_scales_a_hosts_parallel_games_and_batch(tmp_path):
    s = load_settings(write(tmp_path, {"self_play": {"parallel_games": 32, "batch_size": 16}}))
    assert s.weighted_self_play(1.0) == (32, 16)
    assert s.weighted_self_play(2.0) == (64, 32)
    assert s.weighted_self_play(0.5) == (16, 8)
    assert s.weighted_self_play(0.001) == (1, 1) and s.weighted_self_play(1000) == (4096, 4096)


@pytest.mark.parametrize(
    "data, env, path_in_message",
    [
        ({"distributed": {"batch_size": 0}}, {}, "distributed.batch_size"),
        ({}, {"AZGO_DISTRIBUTED__BATCH_SIZE": "many"}, "distributed.batch_size"),
        ({"distributed": {"workers": [{"host": "g", "gpu_id": -1}]}}, {}, "distributed.workers.0.gpu_id"),
        ({"distributed": {"worker_weights": {"g": 0}}}, {}, "distributed.worker_weights"),
        ({"distributed": {"load_balancing": "random"}}, {}, "distributed.load_balancing"),
        ({"self_play": {"parallel_games": -4}}, {}, "self_play.parallel_games"),
        ({"self_play": {"paralel_games": 4}}, {}, "self_play.paralel_games"),  # a typo is an error, not a default
        ({"board": {"size": 25}}, {}, "board.size"),
        ({"search": {"visits": 10, "cheap_visits": 20}}, {}, "search"),
        ({"broker": {"router_port": 7000, "pub_port": 7000}}, {}, "ports must differ"),
        ({"learner": {"min_samples_per_position": 9, "max_samples_per_position": 4}}, {}, "learner"),
        ({"nonsense": {}}, {}, "nonsense"),
        ({"self_play": {"device": "cuda:x"}}, {}, "self_play.device"),
        ({}, {"AZGO_LEARNER__DEVICE": "gpu"}, "learner.device"),
        ({"broker": {"bind": "every-interface"}}, {}, "broker.bind"),
        ({"distributed": {"broker_host": "http://broker:5555"}}, {}, "distributed.broker_host"),
        ({"distributed": {"workers": [{"host": "me@gpu1"}]}}, {}, "distributed.workers.0.host"),
    ],
)
def test_bad_values_name_the_field(tmp_path, monkeypatch, data, env, path_in_message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, data))
    assert path_in_message in str(err.value)


def test_unreadable_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("board: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(bad)


def test_views_build_library_configs():
    s = load_settings(None, board={"size": 7, "komi": 9}, model={"history": 4, "blocks": 2})
    assert s.net_config().board_size == 7 and s.net_config().history == 4 and s.net_config().blocks == 2
    assert s.search_config().history == 4  # the search must write the planes the net reads
    sp = s.selfplay_config()
    assert (sp.board_size, sp.komi, sp.parallel_games) == (7, 9.0, s.self_play.parallel_games)
    assert s.train_config().window == s.learner.window_positions
    assert not s.net_config().aux_heads and not s.net_config().global_pooling  # off by default (measured)
    on = load_settings(None, model={"aux_heads": True, "global_pooling": True})
    assert on.net_config().aux_heads and on.net_config().global_pooling
    aux = load_settings(None, model={"aux_heads": False, "global_pooling": False},
                        train={"ownership_loss_weight": 0.5, "score_loss_weight": 2.0, "opponent_policy_loss_weight": 0})
    assert not aux.net_config().aux_heads and not aux.net_config().global_pooling
    t = aux.train_config()
    assert (t.ownership_loss_weight, t.score_loss_weight, t.opponent_policy_loss_weight) == (0.5, 2.0, 0.0)
    with pytest.raises(ConfigError, match="score_loss_weight"):
        load_settings(None, train={"score_loss_weight": -1})
    assert s.router_endpoint() == "tcp://127.0.0.1:5555" and s.pub_endpoint("h") == "tcp://h:5556"


def test_resolved_yaml_round_trips(tmp_path):
    s = load_settings(None, distributed={"batch_size": 33})
    again = load_settings(write(tmp_path, yaml.safe_load(settings_yaml(s))))
    assert again == s and isinstance(again, Settings)


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.2") and not is_loopback("gpu1")


def test_the_configuration_reference_is_generated_from_the_models():
    # docs/config-reference.md is written by `make docs`; a changed field, default, bound or
    # docstring without it fails here, so the reference cannot drift from the code
    from azgo_core.config_reference import reference_markdown

    text = reference_markdown()
    assert (REPO / "docs" / "config-reference.md").read_text(encoding="utf-8") == text
    for section, field in Settings.model_fields.items():  # every field, with its variable and default
        for key in field.annotation.model_fields:
            assert f"| `{section}.{key}` | `AZGO_{section.upper()}__{key.upper()}` |" in text
    assert "| `search.visits` | `AZGO_SEARCH__VISITS` | int | `100` | >= 1 | Visits of a full search" in text
