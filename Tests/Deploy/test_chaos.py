"""The 60-second chaos run (Tests/Deploy/chaos.py; scripts/chaos.sh runs the long one): two
replicas of every service behind nginx, CircleKit clients sending, uploading and changing
presence, while replicas are SIGKILLed and Redis and PostgreSQL restart."""
import json

from chaos import run


def test_a_minute_of_faults_loses_nothing_acknowledged_and_every_client_catches_up_within_5_s(tmp_path):
    result = run(60, tmp_path / "chaos", say=print)
    shown = json.dumps({key: value for key, value in result.items() if key not in ("undelivered",)}, indent=1)[:6000]
    assert result.get("acknowledged", 0) > 100 and result.get("uploads", 0) >= 5, shown
    assert len(result.get("faults", [])) >= 7, f"three kills, two Redis and two PostgreSQL restarts: {shown}"
    assert result["undeliveredCount"] == 0 and result["duplicatesLive"] == 0, shown
    assert result["missingOnReadCount"] == 0 and not result["twiceOnRead"] and result["refused"] == 0, shown
    assert not result["badUploads"], shown
    assert result["worstCatchUpSeconds"] <= 5, shown
    assert not result["servicesCrashedOnTheirOwn"], shown
    assert result["exitCode"] == 0, shown
