"""``callagent kb``: knowledge bases on the embedded store, from the command line."""

import re

from bench.pdfgen import make_pdf
from callagent.cli import main


def _org(tmp_path, monkeypatch, capsys) -> str:
    monkeypatch.setenv("CALLAGENT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("CALLAGENT_DATABASE_URL", raising=False)
    assert main(["org", "create", "Acme"]) == 0
    return re.search(r"organisation (\S+)", capsys.readouterr().out).group(1)


def test_create_add_search_replace_and_remove(tmp_path, monkeypatch, capsys):
    org = _org(tmp_path, monkeypatch, capsys)
    assert main(["kb", "create", org, "support"]) == 0
    assert "knowledge base" in capsys.readouterr().out
    pages = [[f"Page {p}: section {p} of the manual.", "The boiler pressure should read 1.5 bar." if p == 7 else
              "Nothing about pressure here."] for p in range(12)]
    manual = tmp_path / "manual.pdf"
    manual.write_bytes(make_pdf(pages))
    notes = tmp_path / "notes.md"
    notes.write_text("# Parking\n\nVisitors park behind the building on Mill Lane.\n")
    assert main(["kb", "add", org, "support", str(manual), str(notes)]) == 0
    captured = capsys.readouterr()
    assert "reading manual.pdf: page 12/12" in captured.err  # progress while a PDF is read
    assert "manual.pdf: pdf" in captured.out and "notes.md: markdown" in captured.out

    assert main(["kb", "search", org, "support", "what", "should", "the", "boiler", "pressure", "be"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1] manual.pdf") and "1.5 bar" in out

    notes.write_text("# Parking\n\nVisitors park in the Harbour Mall car park.\n")
    assert main(["kb", "add", org, "support", str(notes)]) == 0  # same name: replaced
    capsys.readouterr()
    assert main(["kb", "docs", org, "support"]) == 0
    docs = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in docs] == ["manual.pdf", "notes.md"]
    assert main(["kb", "search", org, "support", "where", "to", "park"]) == 0
    out = capsys.readouterr().out
    assert "Harbour Mall" in out and "Mill Lane" not in out

    assert main(["kb", "remove", org, "support", "notes.md"]) == 0
    capsys.readouterr()
    assert main(["kb", "search", org, "support", "park"]) == 0
    assert "nothing relevant found" in capsys.readouterr().out
    assert main(["kb", "list", org]) == 0
    assert "support  1 documents" in capsys.readouterr().out
    assert main(["kb", "delete", org, "support"]) == 0
    assert main(["kb", "list", org]) == 0
    assert "support" not in capsys.readouterr().out.replace("deleted support", "")


def test_mistakes_are_one_line(tmp_path, monkeypatch, capsys):
    org = _org(tmp_path, monkeypatch, capsys)
    assert main(["kb", "add", "not-a-uuid", "kb", "x.txt"]) == 2
    assert "organisation id must be a UUID" in capsys.readouterr().err
    assert main(["kb", "add", org, "missing", str(tmp_path / "x.txt")]) == 2
    assert "no such knowledge base" in capsys.readouterr().err
    assert main(["kb", "create", org, "kb"]) == 0
    assert main(["kb", "create", org, "kb"]) == 2
    assert "already has a knowledge base" in capsys.readouterr().err
    assert main(["kb", "add", org, "kb", str(tmp_path / "absent.txt")]) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 nonsense")
    assert main(["kb", "add", org, "kb", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "the PDF cannot be read" in err and "Traceback" not in err
