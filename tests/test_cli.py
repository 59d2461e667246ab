"""The command line: migrate, and organisations with their keys, on the embedded store."""

import re

from callagent.cli import main


def test_org_create_list_and_revoke_keys(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CALLAGENT_DATABASE_URL", raising=False)
    assert main(["migrate"]) == 0
    assert "applied migrations" in capsys.readouterr().out
    assert main(["migrate"]) == 0
    assert "current" in capsys.readouterr().out

    assert main(["org", "create", "Acme"]) == 0
    out = capsys.readouterr().out
    org = re.search(r"organisation (\S+)", out).group(1)
    secret = re.search(r"API key \(shown once, store it now\): (\S+)", out).group(1)
    assert len(secret) > 20

    assert main(["org", "keys", org]) == 0
    listing = capsys.readouterr().out
    assert "active" in listing and secret not in listing  # the secret is never shown again
    key_id = listing.split()[0]

    assert main(["org", "revoke", org, key_id]) == 0
    assert main(["org", "keys", org]) == 0
    assert "revoked" in capsys.readouterr().out


def test_blank_secrets_in_the_environment_mean_not_configured(monkeypatch):
    from control_plane.settings import Settings

    monkeypatch.setenv("TELNYX_API_KEY", "")
    monkeypatch.setenv("DATABASE_URL", "  ")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    settings = Settings()
    assert settings.telnyx_api_key is None and settings.database_url is None
    assert settings.redis_url is not None and settings.redis_url.get_secret_value().startswith("redis://")


def test_freezing_the_startup_heap_keeps_it_out_of_collections_and_frees_its_garbage():
    import gc
    import weakref

    from callagent.runtime import freeze_startup_heap

    class Node:
        pass

    survivor = [Node() for _ in range(1000)]
    cycle = Node()
    cycle.self = cycle  # garbage only a collection frees
    gone = weakref.ref(cycle)
    del cycle
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gone() is None  # collected before freezing, not kept for ever
        assert gc.get_freeze_count() >= before + len(survivor)  # live objects: out of full collections
        assert not any(gc.is_tracked(x) and any(x is o for o in gc.get_objects(2)) for x in survivor[:3])
    finally:
        gc.unfreeze()


def test_bench_stt_engine_reaches_the_engine_process_and_bad_names_are_refused(monkeypatch, capsys):
    import pytest

    from bench import runner
    from callagent.cli import build_parser, main

    seen = {}

    async def fake_run_bench(options):
        seen["engine"] = options.stt_engine
        return 0

    monkeypatch.setattr(runner, "run_bench", fake_run_bench)
    assert main(["bench", "--calls", "1", "--stt-engine", "telnyx"]) == 0
    assert seen["engine"] == "telnyx"
    assert build_parser().parse_args(["bench"]).stt_engine == "deepgram"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "--stt-engine", "whisperx"])
    assert "invalid choice" in capsys.readouterr().err
