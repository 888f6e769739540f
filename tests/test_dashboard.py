"""The web dashboard at / on the broker's HTTP port, in a real browser against the real pipeline.

Broker, learner, evaluator and two self-play workers run as processes on loopback (tiny 5x5
config); Debian's chromium, driven by selenium through chromium-driver, opens the page. It must
load without console errors, show both workers Active, draw the evaluator's generations on the
Elo chart, replay a stored game to the stones the record's moves give (replayed here by
sgfmill's rules, not azgo's), and turn a SIGKILLed worker Offline within the liveness window.
The JSON endpoints, a model download and what the server refuses are checked over plain HTTP.
The screenshot is saved as tmp_path/dashboard.png.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request

import pytest
from fault_helpers import Cluster
from procs import Service, get_json, get_text, http_url, tiny_config, wait_for
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from sgfmill import sgf as sgfmill_sgf
from sgfmill import sgf_moves

from azgo_broker.dashboard import MAX_ROWS, RECORD_SECONDS, Dashboard, downsample, elo, series
from azgo_core.protocol import Rating

GNUGO = os.environ.get("AZGO_GNUGO", "/usr/games/gnugo")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
T = 120.0  # one wait's deadline on a loaded 2-core machine; never reached when things work


def test_downsample_keeps_ends_and_bounds_the_count():
    items = list(range(10_000))
    out = downsample(items, 300)
    assert len(out) == 300 and out[0] == 0 and out[-1] == 9_999 and out == sorted(out)
    assert downsample(items[:5], 300) == items[:5]
    assert len(downsample(items, 10**9)) == 2000  # MAX_POINTS, whatever the query asks


def test_history_stays_bounded_and_ratings_accumulate(tmp_path):
    """A long run: rows never pass MAX_ROWS (the interval doubles instead); every reported generation is kept."""
    board = Dashboard(str(tmp_path), str(tmp_path))
    status = {"totals": {"games": 0, "positions": 0, "bytes_in": 0}, "rates": {"games_per_s": 1.0, "positions_per_s": 9.0},
              "learner": None, "workers_by_state": {"Active": 3}}
    t = 1_000_000.0
    for _ in range(3 * MAX_ROWS):
        t += RECORD_SECONDS  # a call per 2 s of a 7-hour run; a row only when one is due
        status["totals"]["bytes_in"] += 100
        board.record(status, (0.0, 0.0), [], None, now=t)
    assert MAX_ROWS // 2 <= len(board.view.rows) < MAX_ROWS and board.every_s == 4 * RECORD_SECONDS
    assert series(board.view, 300)["rows"][-1][5] == pytest.approx(100 / RECORD_SECONDS)  # bytes_in_per_s
    for first in (0, 200):  # two reports of 256 ratings each: the first report's old generations are kept
        board.rate("random", [Rating(player=f"{g:06d}", generation=g, elo=g, low=g - 1, high=g + 1, games=2)
                              for g in range(first, first + 256)] + [Rating(player="random", elo=0, low=0, high=0, games=9)])
    answer = elo(board.view, 100)
    assert answer["total"] == 456 and len(answer["generations"]) == 100
    assert answer["generations"][-1]["generation"] == 455 and [a["player"] for a in answer["anchors"]] == ["random"]


def status_code(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def browser(tmp_path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,2300", f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER, log_output=str(tmp_path / "driver.log")))


def sgfmill_final_stones(sgf_text: str) -> dict[int, str]:
    """{flat point: 'b'|'w'} after every move of the SGF, by sgfmill's rules (rows from the bottom)."""
    game = sgfmill_sgf.Sgf_game.from_string(sgf_text)
    board, plays = sgf_moves.get_setup_and_moves(game)
    for colour, move in plays:
        if move is not None:
            board.play(move[0], move[1], colour)
    n = board.side
    return {(n - 1 - row) * n + col: colour for colour, (row, col) in board.list_occupied_points()}


def test_dashboard_in_a_browser(tmp_path):
    config = tiny_config(tmp_path, evaluation={
        "enabled": True, "games_per_match": 2, "visits": 4, "opponents": 1, "gnugo_every": 1, "random_every": 1,
        "gnugo_levels": [0], "gnugo": GNUGO, "status_interval": 0.3})
    cluster = Cluster(tmp_path, config)
    driver = None
    try:
        cluster.start_broker()
        cluster.learner()
        workers = {w: cluster.worker(w) for w in ("sp-1", "sp-2")}
        cluster._track(Service("evaluator", config, log_dir=tmp_path))
        url = http_url(config, "")

        # the JSON the page polls: the evaluator's ratings, stored games, models with their sha256
        elo = wait_for(lambda: (e := get_json(url + "/api/elo"))["generations"] and e, T, "a rated generation in /api/elo")
        assert {a["player"] for a in elo["anchors"]} == {"random", "gnugo-l0"}
        games = wait_for(lambda: get_json(url + "/api/games?limit=5"), T, "stored games in /api/games")
        selfplay = [g for g in games if g["kind"] == "selfplay"]
        assert 1 <= len(selfplay) <= 5 and all(g["moves"] > 0 for g in selfplay)
        evaluation = [g for g in games if g["kind"] == "evaluation"]  # from the evaluator's data dir, this host's
        assert 1 <= len(evaluation) <= 5 and all((tmp_path / "evaluator" / "sgf" / g["sgf"]).exists() for g in evaluation)
        models = get_json(url + "/api/models")
        newest = models["generations"][0]
        with urllib.request.urlopen(url + newest["url"], timeout=10) as r:
            assert hashlib.sha256(r.read()).hexdigest() == newest["sha256"]
        series = wait_for(lambda: (s := get_json(url + "/api/series?points=50"))["recorded"] >= 2 and s, T, "two rows")
        assert len(series["rows"]) <= 50 and series["columns"][0] == "t"
        for bad in ("/models/../broker.lock", "/models/999999.safetensors", "/static/../server.py",
                    "/api/game?seq=-5&index=0", "/api/game?sgf=../results.jsonl", "/api/game.sgf?sgf=../../azgo.yaml",
                    "/nothing"):
            assert status_code(url + bad) == 404, bad
        assert status_code(url + "/api/game?seq=x&index=0") == 400
        assert "key" not in get_text(url + "/status").lower().replace("keys_dir", "")

        driver = browser(tmp_path)
        driver.get(url + "/")
        rows = lambda: {r.get_attribute("data-worker"): r.get_attribute("data-state")  # noqa: E731
                        for r in driver.find_elements(By.CSS_SELECTOR, "#workers tbody tr[data-worker]")}
        wait_for(lambda: rows() == {"sp-1": "Active", "sp-2": "Active"}, T, "both workers Active on the page")
        active = driver.find_element(By.CSS_SELECTOR, '#workers tr[data-worker="sp-1"] .state')
        assert active.value_of_css_property("background-color") == "rgba(46, 158, 68, 1)"  # green

        def elo_points():  # the chart's points are the rated generations (both grow: compare until they agree)
            drawn = int(driver.find_element(By.ID, "chart-elo").get_attribute("data-points") or 0)
            return drawn >= 2 and drawn == len(get_json(url + "/api/elo")["generations"]) and drawn
        wait_for(elo_points, T, "two generations on the Elo chart, as many as /api/elo rates")
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-elo canvas")

        # the page opens a game by itself; the newest one (its SGF fetched first: the tiny run soon pushes a game
        # out of the newest 64 batches) opens at its last move, the record's final position
        wait_for(lambda: driver.execute_script("return window.azgo.game"), T, "a game on the board")
        ref = next(g for g in get_json(url + "/api/games?limit=1") if g["kind"] == "selfplay")
        sgf_text = get_text(url + f"/api/game.sgf?seq={ref['seq']}&index={ref['index']}")
        driver.execute_script("loadGame(arguments[0])", ref)
        game = wait_for(lambda: (g := driver.execute_script("return window.azgo.game")).get("seq") == ref["seq"]
                        and g["index"] == ref["index"] and g, 30, "the newest self-play game on the board")
        drawn = lambda: {int(c.get_attribute("data-point")): c.get_attribute("class").split()[1][0]  # noqa: E731
                         for c in driver.find_elements(By.CSS_SELECTOR, "#board circle.stone")}
        expected = sgfmill_final_stones(sgf_text)
        assert expected and drawn() == expected
        driver.find_element(By.ID, "first").click()
        assert drawn() == {}
        for _ in range(len(game["moves"])):
            driver.find_element(By.ID, "next").click()
        assert drawn() == expected
        assert driver.find_element(By.ID, "sgf").get_attribute("href").endswith(game["sgf_url"])

        # an evaluation game (the evaluator's SGF file, replayed here by sgfmill) the same way
        def click_evaluation_row():  # retried: the table is redrawn every 10 s (a stale row raises)
            row = driver.find_element(By.CSS_SELECTOR, '#games tr[data-kind="evaluation"]')
            name = row.get_attribute("data-game").removeprefix("eval:")
            row.click()
            return name
        name = wait_for(click_evaluation_row, 30, "an evaluation game's row clicked")
        wait_for(lambda: driver.execute_script("return window.azgo.game.sgf") == name, 10, "the evaluation game loaded")
        expected = sgfmill_final_stones((tmp_path / "evaluator" / "sgf" / name).read_text())
        assert drawn() == expected

        # a killed worker turns Offline within the liveness window (plus a poll of the page)
        workers["sp-2"].kill()
        liveness = cluster.settings.distributed.liveness_seconds
        wait_for(lambda: rows().get("sp-2") == "Offline", liveness + 10, "sp-2 Offline on the page")
        assert rows()["sp-1"] in ("Active", "Syncing")  # alive: it may be adopting a new generation

        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == [], errors
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    except BaseException:
        cluster.dump_logs()
        raise
    finally:
        if driver is not None:
            driver.quit()
        cluster.close()


@pytest.fixture(autouse=True)
def _needs_chromium():
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), (
        "the dashboard test needs Debian's chromium and chromium-driver (.ci/run installs them)")
