"""The results block of a Markdown file: the text between `<!-- report:begin -->` and
`<!-- report:end -->`, rewritten by `genre-lab report --readme FILE` so that the result tables
of `experiments/*/README.md` come from the runs, not from a keyboard.

A file must hold exactly one begin marker followed by one end marker, or it is refused
untouched; only the text between them is rewritten, the rest kept byte for byte.
"""

from __future__ import annotations

from pathlib import Path

README_BEGIN = "<!-- report:begin -->"
README_END = "<!-- report:end -->"


def _block(text: str, path: Path) -> tuple[int, int]:
    """Where the report block of `path` starts and ends (just after its begin marker, at its
    end marker). The file must hold exactly one begin and one end marker, in that order:
    anything else is refused rather than guessed at."""
    begins, ends = text.count(README_BEGIN), text.count(README_END)
    start, stop = text.find(README_BEGIN), text.find(README_END)
    if begins != 1 or ends != 1 or stop < start:
        found = f"{begins} '{README_BEGIN}' and {ends} '{README_END}'" + (", end first" if begins == ends == 1 else "")
        raise ValueError(f"--readme {path}: needs exactly one '{README_BEGIN}' followed by one '{README_END}' "
                         f"to replace the block between them (found {found})")
    return start + len(README_BEGIN), stop


def _read_text(path: Path) -> str:
    """The file as it is (line endings kept), or a one-line error naming it."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"--readme {path}: not UTF-8 text (byte {err.start})") from None


def replace_block(path: Path, markdown: str | None) -> None:
    """Put `markdown` between the report markers of `path`; the rest of the file is kept byte
    for byte (its line endings too). None only checks that the file can take it."""
    text = _read_text(path)
    start, stop = _block(text, path)
    if markdown is None:
        return
    if README_BEGIN in markdown or README_END in markdown:  # escaped tables never hold one
        raise ValueError(f"--readme {path}: the table holds a report marker; not written")
    newline = "\r\n" if "\r\n" in text else "\n"
    block = ("\n" + markdown).replace("\n", newline)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text[:start] + block + text[stop:])
