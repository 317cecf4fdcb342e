"""Is a decoded file cut short? libsndfile decodes whatever part of a file is there without
an error, so a truncated song would pass as a shorter one. Each container is checked against
the length it declares itself:

- WAV / AIFF / AU (SND): the data chunk size in the header (`data`, `SSND`, `Data Size`),
  which libsndfile's header log reports as "N (should be M)" when the file holds less.
- MP3: the frame count of the VBR/Info header (LAME writes one for every bitrate mode).
- FLAC: the total sample count of STREAMINFO; a FLAC cut anywhere inside a frame makes the
  decoder fail instead, which `genre_lab.audio` reports as truncated or damaged.
- Ogg (Vorbis, Opus): the page structure. Every page states its own length and the stream's
  last page carries the end-of-stream flag, so a file whose last page is incomplete or lacks
  that flag was cut. libsndfile's log was not reliable here: cut inside the last page, it
  only noted "junk after the last page", which an intact file with a trailing tag also gets.

Not detectable: a format with no declared length (raw MP3 frames without a VBR/Info header,
an AU or WAV written by a streaming writer with a placeholder size). For an MP3 without that
header libsndfile estimates the length from the first frames' bitrate and soundfile reads no
further (measured: an intact 8 s VBR file without its Xing frame decodes to 1.4 or 3.2 s).
"""

from __future__ import annotations

import re
from pathlib import Path

#: "data : 441000 (should be 264582)": declared chunk bytes, then the bytes the file holds.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: Streaming writers that cannot seek back leave 0, 0x7FFFFFFF or 0xFFFFFFFF as the size.
_PLACEHOLDER_SIZE = 0x7FFF0000
#: Frames an intact file may decode short of its declared count. MP3: one MPEG frame, for
#: VBR headers of other encoders (libsndfile/LAME files decode exactly the declared count:
#: measured on 15 files, 1-13 s, 8-48 kHz, VBR/CBR/ABR). Other formats: exact.
_FRAME_SLACK = {"MP3": 1152}
_OGG_EOS = 0x04


def truncation(path: Path, container: str, header_log: str, decoded: int | None, declared: int) -> str | None:
    """Why `path` is truncated, or None. `container` is soundfile's format name ("WAV",
    "OGG", ...), `header_log` libsndfile's `extra_info`, `decoded` the frames read from the
    start to the end (None when only a part was read) and `declared` soundfile's `frames`."""
    match = _SHORT_CHUNK.search(header_log)
    if match:
        declared_bytes, held = int(match[1]), int(match[2])
        if 0 < declared_bytes < _PLACEHOLDER_SIZE and held < declared_bytes:
            return f"truncated: header declares {declared_bytes} data bytes, file holds {held}"
    if container == "OGG":
        return ogg_truncation(path)
    if decoded is not None and declared > 0 and decoded < declared - _FRAME_SLACK.get(container, 0):
        return f"truncated: header declares {declared} frames, only {decoded} decode"
    return None


def ogg_truncation(path: Path) -> str | None:
    """Walk the Ogg pages from the start: 27 header bytes, a segment table, a body whose
    length is the table's sum. Bytes after a complete end-of-stream page (a tag) are fine."""
    # The whole file in one read: walking ~700 pages of a 3-minute Vorbis file costs ~1 ms.
    data = path.read_bytes()
    pos, flags = 0, None
    while data.startswith(b"OggS", pos):
        table = pos + 27
        if table > len(data) or table + data[pos + 26] > len(data):
            return f"truncated: the Ogg page at byte {pos} is cut off (file is {len(data)} bytes)"
        end = table + data[pos + 26] + sum(data[table : table + data[pos + 26]])
        if end > len(data):
            return f"truncated: the Ogg page at byte {pos} needs {end} bytes, file holds {len(data)}"
        flags, pos = data[pos + 5], end
    if flags is not None and not flags & _OGG_EOS:
        return f"truncated: the Ogg stream stops at byte {pos} without its end-of-stream page"
    return None
