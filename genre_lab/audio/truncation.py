"""Is a decoded file cut short? libsndfile decodes whatever part of a file is there without
an error, so a truncated song would pass as a shorter one. Each container is checked against
the length it declares itself, found from the file's content (never its name: a W64 file named
`.wav` is checked as W64):

- WAV / AIFF / AU (SND) / 8SVX / CAF: the data chunk size in the header (`data`, `SSND`,
  `Data Size`, `BODY`), which libsndfile's header log reports as "N (should be M)" when the
  file holds less; CAF, W64 and RF64 (whose 64-bit sizes libsndfile does not compare) and
  WAV are also walked chunk by chunk here (`_riff_data`, `_w64_data`, `_caf_data`).
- NIST SPHERE: the `sample_count` of its text header.
- AIFF, RF64, AVR, MPC2000: the frame count the header states ("Frames : N" in the log).
- VOC: every block states its length; libsndfile logs "Seems to be a truncated file".
- MP3: the frame count of the VBR/Info header (LAME writes one for every bitrate mode).
- FLAC: the total sample count of STREAMINFO; a FLAC cut anywhere inside a frame makes the
  decoder fail instead, which `genre_lab.audio.decode` reports as truncated or damaged.
- Ogg (Vorbis, Opus): the page structure. Every page states its own length and the stream's
  last page carries the end-of-stream flag, so a file whose last page is incomplete or lacks
  that flag was cut. libsndfile's log was not reliable here: cut inside the last page, it
  only noted "junk after the last page", which an intact file with a trailing tag also gets.

Refused (`unchecked_container`): every other container libsndfile reads. IRCAM, PAF and PVF
headers state no length at all (a cut file is indistinguishable from a short one), and the
rest (MATLAB, HTK, SD2, SDS, XI, Psion WVE, ...) are not music formats worth the risk.

Not detectable: a format with no declared length (raw MP3 frames without a VBR/Info header,
an AU or WAV written by a streaming writer with a placeholder size). For an MP3 without that
header libsndfile estimates the length from the first frames' bitrate and soundfile reads no
further (measured: an intact 8 s VBR file without its Xing frame decodes to 1.4 or 3.2 s).
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

#: "data : 441000 (should be 264582)": declared chunk bytes, then the bytes the file holds.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND|Data Size|BODY)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
#: "Frames : 32000": the frame count a header states (AIFF's COMM, RF64's ds64, AVR, MPC2000).
_STATED_FRAMES = re.compile(r"^\s*Frames\s*:\s*(\d+)\s*$", re.MULTILINE)
#: libsndfile's own verdict while parsing (VOC blocks, MATLAB matrices).
_SAYS_TRUNCATED = re.compile(r"seems to be (?:a )?truncated", re.IGNORECASE)
#: Streaming writers that cannot seek back leave 0, 0x7FFFFFFF or 0xFFFFFFFF as the size.
_PLACEHOLDER_SIZE = 0x7FFF0000
#: Frames an intact file may decode short of its declared count. MP3: one MPEG frame, for
#: VBR headers of other encoders (libsndfile/LAME files decode exactly the declared count:
#: measured on 15 files, 1-13 s, 8-48 kHz, VBR/CBR/ABR). Other formats: exact.
_FRAME_SLACK = {"MP3": 1152}
_OGG_EOS = 0x04
#: Containers (soundfile's format names) whose files are checked for truncation; any other
#: container libsndfile opens is refused by `unchecked_container`.
CHECKED_CONTAINERS = frozenset({
    "WAV", "WAVEX", "W64", "RF64", "AIFF", "AU", "SVX", "CAF", "NIST", "AVR", "MPC2K", "VOC",
    "FLAC", "OGG", "MP3",
})
#: Chunks walked at most while looking for the data chunk (a crafted file cannot loop long).
_MAX_CHUNKS = 4096
_W64_GUID_TAIL = bytes.fromhex("f3acd311 8cd100c0 4f8edb8a".replace(" ", ""))


def unchecked_container(container: str) -> str | None:
    """Why files in `container` are refused, or None when their length can be checked."""
    if container in CHECKED_CONTAINERS:
        return None
    return (f"the {container} container is not supported: a copy cut short cannot be told from a whole "
            "file in it (convert it to WAV, FLAC or Ogg)")


def truncation(path: Path, container: str, header_log: str, decoded: int | None, declared: int) -> str | None:
    """Why `path` is truncated, or None. `container` is soundfile's format name ("WAV",
    "OGG", ...), `header_log` libsndfile's `extra_info`, `decoded` the frames read from the
    start to the end (None when only a part was read) and `declared` soundfile's `frames`
    (which libsndfile already shortened to the bytes present for most containers)."""
    match = _SHORT_CHUNK.search(header_log)
    if match:
        declared_bytes, held = int(match[1]), int(match[2])
        if 0 < declared_bytes < _PLACEHOLDER_SIZE and held < declared_bytes:
            return f"truncated: header declares {declared_bytes} data bytes, file holds {held}"
    if container == "OGG":
        return ogg_truncation(path)
    if _SAYS_TRUNCATED.search(header_log):
        return f"truncated: the {container} data blocks run past the end of the file"
    cut = _header_truncation(path, container)
    if cut:
        return cut
    got = declared if decoded is None else min(decoded, declared)
    stated = _stated_frames(path, container, header_log)
    if stated and got < stated:
        return f"truncated: header declares {stated} frames, file holds {got}"
    if decoded is not None and declared > 0 and decoded < declared - _FRAME_SLACK.get(container, 0):
        return f"truncated: header declares {declared} frames, only {decoded} decode"
    return None


def _stated_frames(path: Path, container: str, header_log: str) -> int | None:
    """The frame count the header states, where it states one (0 counts as none)."""
    if container == "NIST":
        return _nist_sample_count(path)
    match = _STATED_FRAMES.search(header_log)
    return int(match[1]) or None if match else None


def _header_truncation(path: Path, container: str) -> str | None:
    """Data chunk bytes declared against bytes present, for the chunked containers whose
    sizes libsndfile does not compare (64-bit sizes of W64 and RF64, CAF) and WAV."""
    walk = {"WAV": _riff_data, "WAVEX": _riff_data, "RF64": _riff_data, "W64": _w64_data, "CAF": _caf_data}.get(container)
    if walk is None:
        return None
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            found = walk(f, size)
    except (OSError, struct.error):
        return None  # libsndfile opened it; an unreadable header here is not evidence of a cut
    if found is None:
        return None
    declared_bytes, held = found
    if held < declared_bytes:
        return f"truncated: header declares {declared_bytes} data bytes, file holds {max(held, 0)}"
    return None


def sniffed_truncation(path: Path) -> str | None:
    """Why a file libsndfile refused to open is truncated, judged from its leading bytes alone
    (a CAF cut inside its data chunk is "malformed" to libsndfile), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return None
    if head == b"OggS":
        return ogg_truncation(path)
    container = {b"caff": "CAF", b"riff": "W64", b"RIFF": "WAV", b"RIFX": "WAV", b"RF64": "RF64", b"BW64": "RF64"}.get(head)
    return _header_truncation(path, container) if container else None


def _read_at(f: BinaryIO, pos: int, n: int) -> bytes:
    f.seek(pos)
    return f.read(n)


def _riff_data(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, present) bytes of the `data` chunk of a RIFF/RIFX/RF64/BW64 WAVE file; an
    RF64 data size of 0xFFFFFFFF is the ds64 chunk's 64-bit one. None: placeholder or none."""
    head = _read_at(f, 0, 12)
    if head[:4] not in (b"RIFF", b"RIFX", b"RF64", b"BW64") or head[8:12] != b"WAVE":
        return None
    order = ">" if head[:4] == b"RIFX" else "<"
    pos, ds64 = 12, None
    for _ in range(_MAX_CHUNKS):
        header = _read_at(f, pos, 8)
        if len(header) < 8:
            return None
        kind, n = header[:4], struct.unpack(order + "I", header[4:])[0]
        if kind == b"ds64":
            body = f.read(16)
            ds64 = struct.unpack("<Q", body[8:16])[0] if len(body) == 16 else None
        elif kind == b"data":
            if n == 0xFFFFFFFF and ds64:
                return ds64, size - pos - 8
            if 0 < n < _PLACEHOLDER_SIZE:
                return n, size - pos - 8
            return None
        pos += 8 + n + (n & 1)
    return None


def _w64_data(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, present) bytes of a Sony Wave64 file's data chunk: 16-byte GUIDs, 64-bit
    sizes that count their own 24-byte header, chunks aligned to 8 bytes."""
    if _read_at(f, 0, 4) != b"riff":
        return None
    pos = 40  # riff GUID, riff size, wave GUID
    for _ in range(_MAX_CHUNKS):
        header = _read_at(f, pos, 24)
        if len(header) < 24:
            return None
        n = struct.unpack("<Q", header[16:])[0]
        if header[:4] == b"data" and header[4:16] == _W64_GUID_TAIL:
            return (n - 24, size - pos - 24) if n > 24 else None
        if n < 24:
            return None
        pos += (n + 7) & ~7
    return None


def _caf_data(f: BinaryIO, size: int) -> tuple[int, int] | None:
    """(declared, present) bytes of a CAF file's `data` chunk (its size counts a 4-byte edit
    count; -1 means "to the end of the file", which cannot be checked)."""
    if _read_at(f, 0, 4) != b"caff":
        return None
    pos = 8
    for _ in range(_MAX_CHUNKS):
        header = _read_at(f, pos, 12)
        if len(header) < 12:
            return None
        kind, n = header[:4], struct.unpack(">q", header[4:])[0]
        if kind == b"data":
            return (n - 4, size - pos - 16) if n > 4 else None
        if n < 0:
            return None
        pos += 12 + n
    return None


def _nist_sample_count(path: Path) -> int | None:
    """`sample_count -i N` of a NIST SPHERE text header (the first 1024 bytes or as stated)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
    except OSError:
        return None
    match = re.search(rb"^sample_count\s+-i\s+(\d+)\s*$", head.split(b"end_head")[0], re.MULTILINE)
    return int(match[1]) if match else None


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
