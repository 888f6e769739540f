"""The evaluator: every new generation plays rated matches; ratings for all from all results.

The loop, top to bottom:

1. ``link.pump()`` hears the broker's current generation (announcements, heartbeat acks).
2. When it is newer than every generation evaluated so far, ``evaluate`` fetches it and
   plays the matches ``schedule.plan`` names (earlier generations, the random player, GNU
   Go; with gating, the best generation first). Our networks search ``evaluation.visits``
   visits per move without noise and play the most visited move; colours alternate. Every
   game is kept as SGF and one line in results.jsonl as soon as it ends. Generations
   published while a match was running are skipped: the next evaluation is the newest.
3. ``refit`` fits Bradley-Terry ratings to every result so far (the random player = Elo 0),
   writes ratings.json and reports them to the broker (``EvalReport``: azgo_elo in /metrics,
   ``ratings`` in /status).

Between moves it keeps heartbeating, samples the broker's /status into status.jsonl every
``evaluation.status_interval`` seconds, and checks for a stop; a stop abandons the game in
progress (the generation is evaluated again after a restart, its finished games kept).
"""

from __future__ import annotations

import logging
import time
import zlib

from azgo_core import protocol as P
from azgo_core.config import Settings
from azgo_core.match import MatchGame, MatchPlayer, RandomPlayer, play_match
from azgo_core.rating import fit_ratings
from azgo_runtime.engines import SpecError, find_gnugo, gnugo_argv, net_player
from azgo_runtime.gtp_player import GtpEngineError, GtpPlayer

from .link import BrokerLink
from .results import ResultStore
from .schedule import RANDOM, Opponent, accepted, anchor_of, plan

log = logging.getLogger("azgo.evaluator")

IDLE_POLL = 0.5  # seconds between looks at the broker while there is nothing to evaluate


class Stopped(Exception):
    """A stop arrived in the middle of a game."""


class Evaluator:
    def __init__(self, settings: Settings, stop, evaluator_id: str = "evaluator"):
        self.settings, self.cfg, self.stop = settings, settings.evaluation, stop
        self.size, self.komi = settings.board.size, settings.board.komi
        self.store = ResultStore(self.cfg.data_dir)
        self.link = BrokerLink(settings, evaluator_id)
        self.evaluator_id = evaluator_id
        self.nets: dict[int, object] = {}  # generation -> AZNet, those the current evaluation needs
        self.unloadable: set[int] = set()  # generations whose model file was refused: never tried again
        self.gnugo = self._find_gnugo()
        self.next_sample = 0.0

    def _find_gnugo(self) -> str | None:
        if not self.cfg.gnugo_every:
            return None
        try:
            return find_gnugo(self.cfg.gnugo)
        except SpecError as e:
            log.warning("%s: the GNU Go matches are skipped", e)
            return None

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        if not self.cfg.enabled:
            log.info("evaluation.enabled is false: idle until stopped")
            while not self.stop.wait(3600):
                pass
            return 0
        log.info("evaluator %s: %dx%d komi %g, %d games per match at %d visits, data in %s; %d generation(s) "
                 "evaluated before", self.evaluator_id, self.size, self.size, self.komi, self.cfg.games_per_match,
                 self.cfg.visits, self.store.dir, len(self.store.evaluated()))
        if self.store.games():
            self.refit()  # the broker learns the ratings after a restart of either side
        try:
            while not self.stop.is_set():
                self.housekeeping()
                target = self.next_generation()
                if target is None:
                    self.stop.wait(IDLE_POLL)
                    continue
                try:
                    self.evaluate(target)
                except Stopped:
                    break
        finally:
            self.link.close()
        log.info("stopped")
        return 0

    def housekeeping(self) -> None:
        """Between moves: broker traffic, the status sample when due, and the stop check."""
        self.link.pump()
        now = time.monotonic()
        if now >= self.next_sample:
            self.next_sample = now + self.cfg.status_interval
            sample = self.link.sample_status()
            if sample is not None:
                self.store.add_status(sample)

    def next_generation(self) -> int | None:
        """The broker's current generation when it is newer than everything evaluated."""
        done = self.store.evaluated()
        current = self.link.current
        if current < 0 or (done and current <= done[-1]) or current in self.unloadable:
            return None
        return current

    # --- one generation -------------------------------------------------------------------
    def evaluate(self, generation: int) -> None:
        evaluated = self.store.evaluated()
        best = self.store.best_generation()
        opponents = plan(evaluated, self.cfg, best=best, gnugo=self.gnugo is not None)
        needed = {generation} | {o.generation for o in opponents if o.generation is not None}
        self.nets = {g: net for g, net in self.nets.items() if g in needed}
        if any(not self.load(g) for g in sorted(needed)):
            self.stop.wait(1.0)  # the broker is away: try again from the loop
            return
        log.info("evaluating generation %s: %s", P.generation_id(generation),
                 ", ".join(f"{o.name} x{o.games}" for o in opponents) or "no opponent configured")
        subject = P.generation_id(generation)
        gate = None
        for opponent in opponents:
            score = self.match(subject, generation, opponent)
            if score is not None and opponent.gate:
                gate = {"opponent": opponent.name, "score": score, "accepted": accepted(score, self.cfg)}
        if self.cfg.gating:
            best = generation if best < 0 or (gate and gate["accepted"]) else best
            log.info("gate: generation %s %s (best is %s)", subject, "accepted" if best == generation else "rejected",
                     P.generation_id(best))
        self.store.add_evaluation({"generation": generation, "time": time.time(), "opponents": [o.name for o in opponents],
                                   "gate": gate, "best_generation": best if self.cfg.gating else -1})
        self.refit()

    def load(self, generation: int) -> bool:
        """Fetch and load a generation's network (cached); False when the broker cannot give it."""
        if generation in self.nets:
            return True
        from azgo_core.model import ModelFileError, load_model

        found = self.link.fetch_model(generation)
        if found is None:
            return False
        info, blob = found
        try:
            net, _ = load_model(blob, expected_board_size=self.size, expected_sha256=info.sha256)
        except ModelFileError as e:
            log.error("generation %s cannot be evaluated: %s", P.generation_id(generation), e)
            self.unloadable.add(generation)
            return False
        self.nets[generation] = net
        return True

    def player(self, name: str, generation: int | None, level: int | None = None) -> MatchPlayer:
        if generation is not None:
            return net_player(self.nets[generation], f"azgo-{P.generation_id(generation)}", self.cfg.visits,
                              self.cfg.device, seed=generation)
        if name == RANDOM:
            return RandomPlayer(seed=len(self.store.games()))
        return GtpPlayer(gnugo_argv(self.gnugo, level), name=name)

    def match(self, subject: str, generation: int, opponent: Opponent) -> float | None:
        """Play one match and record every game; the subject's score, or None when it broke off."""
        match_id = f"{subject}-vs-{opponent.name}-{int(time.time() * 1000)}"
        try:
            a = self.player(subject, generation)
            b = self.player(opponent.name, opponent.generation, opponent.level)
        except (GtpEngineError, OSError) as e:
            log.error("match %s not played: %s", match_id, e)
            return None

        def record(i: int, game: MatchGame, a_black: bool) -> None:
            self.record_game(match_id, subject, opponent.name, game, a_black)

        def between_moves(position) -> None:
            self.housekeeping()
            if self.stop.is_set():
                raise Stopped

        try:
            # distinct games (openings, engine seeds), and different ones in every match
            result = play_match(a, b, opponent.games, self.size, self.komi, on_game=record, on_move=between_moves,
                                seed=zlib.crc32(match_id.encode()))
        except GtpEngineError as e:
            log.error("match %s broken off: %s", match_id, e)
            return None
        finally:
            a.close()
            b.close()
        score = result.score()[0]
        log.info("%s vs %s: %d-%d-%d, score %.3f", subject, opponent.name, result.wins, result.draws, result.losses, score)
        return score

    def record_game(self, match_id: str, subject: str, opponent: str, game: MatchGame, a_black: bool) -> None:
        about = f"azgo evaluation of generation {subject} against {opponent}, {self.cfg.visits} visits"
        sgf = self.store.write_sgf(subject, opponent, game.to_sgf(about=about, date=time.strftime("%Y-%m-%d")))
        self.store.add_game({
            "time": time.time(), "match": match_id, "subject": subject, "opponent": opponent, "black": game.black,
            "white": game.white, "result": game.result_string(), "subject_points": game.points_for(a_black),
            "reason": game.reason, "moves": len(game.moves), "size": game.size, "komi": game.komi,
            "visits": self.cfg.visits, "sgf": sgf,
        })

    # --- ratings --------------------------------------------------------------------------
    def refit(self) -> None:
        """Fit every result, write ratings.json, report to the broker."""
        results = self.store.pairwise()
        if not results:
            return
        players = {p for r in results for p in r[:2]}
        evaluated = self.store.evaluated()
        ratings = fit_ratings(results, anchor=anchor_of(players, evaluated), prior_draws=self.cfg.prior_draws)
        generations = {p: int(p) for p in players if p.isdigit()}
        doc = self.store.write_ratings(ratings, generations, self.store.best_generation())
        rated = [p for p in doc["players"] if p["elo"] is not None]
        newest = sorted((p for p in rated if p["generation"] is not None), key=lambda p: p["generation"])
        anchors = [p for p in rated if p["generation"] is None]
        keep = newest[-(P.MAX_RATINGS - len(anchors)):] + anchors
        message = P.EvalReport(
            evaluator_id=self.evaluator_id, anchor=ratings.anchor, games_total=doc["games_total"],
            matches_total=doc["matches_total"], best_generation=doc["best_generation"],
            ratings=[P.Rating(player=p["player"], generation=p["generation"], elo=float(p["elo"]), low=float(p["low"]),
                              high=float(p["high"]), games=p["games"]) for p in keep],
        )
        if newest:
            r = newest[-1]
            log.info("ratings: generation %s %+.0f Elo (%+.0f .. %+.0f), %d games in all", r["player"], r["elo"], r["low"],
                     r["high"], doc["games_total"])
        self.link.report(message)
