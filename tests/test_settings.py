from pathlib import Path

import pytest
from pydantic import ValidationError

from authz.settings import Settings


def test_environment_prefix_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSENTGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CONSENTGATE_PORT", "8123")
    monkeypatch.setenv("CONSENTGATE_CHAIN_URL", "http://127.0.0.1:8545")
    s = Settings()
    assert s.data_dir == tmp_path
    assert s.port == 8123
    assert s.embedded is False
    assert s.db_url() == f"sqlite:///{tmp_path / 'index.sqlite3'}"


def test_registrar_token_generated_once_and_kept(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    first = s.effective_registrar_token()
    assert len(first) >= 40
    assert Settings(data_dir=tmp_path).effective_registrar_token() == first
    assert (tmp_path / "registrar_token").stat().st_mode & 0o777 == 0o600


def test_placeholder_registrar_token_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(registrar_token="changeme")
