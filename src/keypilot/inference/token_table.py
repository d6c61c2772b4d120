"""The text encoder's token embedding, looked up outside the keystroke graph.

The table is the largest tensor a keystroke touches (32,000 x 312 at the reference size: 10 MB
in INT8), and a keystroke reads at most ``max_context_tokens`` of its rows. Inside the
keystroke graph, onnxruntime maps the table, and every row the context looks up faults in the
64 KB around it (the kernel's fault-around, which ``MADV_RANDOM`` does not turn off): a few
hundred distinct tokens made ~13 MB of it resident. Read with ``pread``, the rows go through
the page cache, which is not the predictor's memory, and only the rows themselves are copied.

Files (written by ``keypilot export`` beside the keystroke graph, ``quantize.graph_files``):
``<graph>.tokens.npy`` - ``[V, hidden]`` float32, or int8 with ``<graph>.tokens.scale.npy``
``[V]`` float32 (one symmetric scale per row: ``row = int8 * scale``).

A model whose text encoder reads the decoder's table (``text_encoder.shared_embedding``) has
no INT8 table of its own: ``SharedTable`` reads the columns of the decode head's INT8
vocabulary matrix ``[d, V]``, which the head reads whole at every beam step anyway, and hands
onnxruntime that same mapping for the head, so the matrix is on disk and in memory once.

Torch-free: numpy and the standard library.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TOKENS_SUFFIX = ".tokens.npy"
SCALE_SUFFIX = ".tokens.scale.npy"


def table_paths(graph_path: str | os.PathLike) -> tuple[Path, Path]:
    """The token table and its scale file that belong beside the graph at ``graph_path``."""
    graph_path = Path(graph_path)
    stem = graph_path.name.removesuffix(".onnx")
    return graph_path.with_name(stem + TOKENS_SUFFIX), graph_path.with_name(stem + SCALE_SUFFIX)


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric INT8 with one scale per row: ``(int8 [V, H], scale [V] float32)``; an all-zero row
    gets scale 1 (its int8 values are 0 anyway)."""
    table = np.asarray(table, np.float32)
    scale = np.abs(table).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    values = np.clip(np.rint(table / scale[:, None]), -127, 127).astype(np.int8)
    return values, scale.astype(np.float32)


def save_table(table: np.ndarray, graph_path: str | os.PathLike, int8: bool) -> list[Path]:
    """Write ``table`` ``[V, H]`` beside the graph (INT8 rows + scales with ``int8``); returns the files."""
    rows_path, scale_path = table_paths(graph_path)
    if int8:
        values, scale = quantize_rows(table)
        np.save(rows_path, values, allow_pickle=False)
        np.save(scale_path, scale, allow_pickle=False)
        return [rows_path, scale_path]
    np.save(rows_path, np.ascontiguousarray(table, np.float32), allow_pickle=False)
    return [rows_path]


class TokenTable:
    """Rows of a token embedding table on disk: ``rows(ids) -> [len(ids), hidden]`` float32."""

    def __init__(self, path: str | os.PathLike, scale_path: str | os.PathLike | None = None) -> None:
        self.path = Path(path)
        self._file = open(self.path, "rb")  # noqa: SIM115 - kept open for pread, closed by close()
        try:
            version = np.lib.format.read_magic(self._file)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(self._file)
        except ValueError as exc:
            self._file.close()
            raise ValueError(f"{self.path}: not a token table (.npy): {exc}") from None
        if len(shape) != 2 or fortran or dtype not in (np.dtype(np.float32), np.dtype(np.int8)):
            self._file.close()
            raise ValueError(f"{self.path}: a token table is a C-order [V, hidden] float32 or int8 array, "
                             f"got {shape} {dtype}{' (Fortran order)' if fortran else ''}")
        self.num_rows, self.dim = shape
        self.dtype = dtype
        self._offset = self._file.tell()
        self._row_bytes = self.dim * dtype.itemsize
        self.scale: np.ndarray | None = None
        if dtype == np.int8:
            if scale_path is None:
                self._file.close()
                raise ValueError(f"{self.path}: an int8 token table needs its scale file")
            self.scale = np.load(scale_path, allow_pickle=False).astype(np.float32)  # [V]: 4 bytes a row
            if self.scale.shape != (self.num_rows,):
                self._file.close()
                raise ValueError(f"{scale_path}: {self.scale.shape} scales for a table of {self.num_rows} rows")

    @classmethod
    def beside(cls, graph_path: str | os.PathLike) -> TokenTable | None:
        """The table written beside the graph at ``graph_path``, or None when there is none."""
        rows_path, scale_path = table_paths(graph_path)
        if not rows_path.is_file():
            return None
        return cls(rows_path, scale_path if scale_path.is_file() else None)

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The embeddings of ``ids`` (any shape) -> ``ids.shape + (hidden,)`` float32."""
        ids = np.asarray(ids)
        flat = ids.reshape(-1).tolist()
        out = np.empty((len(flat), self.dim), self.dtype)
        fd = self._file.fileno()
        for i, token in enumerate(flat):
            if not 0 <= token < self.num_rows:
                raise IndexError(f"token id {token} is outside the table's {self.num_rows} rows ({self.path})")
            out[i] = np.frombuffer(os.pread(fd, self._row_bytes, self._offset + token * self._row_bytes), self.dtype)
        result = out.astype(np.float32, copy=False)
        if self.scale is not None:
            result = result * self.scale[flat][:, None]
        return result.reshape(*ids.shape, self.dim)

    def close(self) -> None:
        self._file.close()


class SharedTable:
    """Rows of the decode head's INT8 vocabulary matrix ``[d, V]`` (its columns), for a model
    whose text encoder reads the decoder's table: ``rows(ids) -> [len(ids), d]`` float32.

    ``spec`` (the export's ``token_table`` entry, ``export.shared_table_spec``): the head's
    external data ``file``, the matrix's ``offset`` in it, ``shape``, and its per-tensor
    ``scale`` and ``zero_point``; ``initializer`` names it in the head's graph.
    """

    def __init__(self, export_dir: str | os.PathLike, spec: dict) -> None:
        self.path = Path(export_dir) / spec["file"]
        self.dim, self.num_rows = spec["shape"]
        expected = spec["offset"] + self.dim * self.num_rows
        if not self.path.is_file() or self.path.stat().st_size < expected:
            raise FileNotFoundError(f"{self.path}: the decode head's weights, which hold the token table "
                                    f"({self.dim} x {self.num_rows} int8 at byte {spec['offset']}), are missing or "
                                    "cut short: copy them with the graph or export again")
        self.matrix = np.memmap(self.path, np.int8, "r", offset=spec["offset"], shape=(self.dim, self.num_rows))
        self.scale, self.zero_point = float(spec["scale"]), int(spec["zero_point"])
        self.initializer = spec["initializer"]

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The embeddings of ``ids`` (any shape) -> ``ids.shape + (d,)`` float32."""
        ids = np.asarray(ids)
        flat = ids.reshape(-1)
        bad = flat[(flat < 0) | (flat >= self.num_rows)]
        if bad.size:
            raise IndexError(f"token id {int(bad[0])} is outside the table's {self.num_rows} rows ({self.path})")
        columns = self.matrix[:, flat].T.astype(np.float32)
        return ((columns - self.zero_point) * self.scale).reshape(*ids.shape, self.dim)
