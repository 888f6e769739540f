"""azgo_evaluator: rated matches for every new generation (``python -m azgo_evaluator --config FILE``).

Modules:
    evaluator  Evaluator: the loop (notice a generation, play its matches, refit, report)
    schedule   who a generation plays (earlier generations, random, GNU Go, the gate); the anchor
    link       BrokerLink: hello, heartbeats, model fetches, EvalReport, /status samples
    results    the data dir: results.jsonl, evaluations.jsonl, ratings.json, status.jsonl, sgf/
"""
