"""Read the opset imports of an ONNX file without the ``onnx`` package.

An edge install has onnxruntime but not ``onnx``; the opset is the only thing we
need from the ``ModelProto`` before handing the file to onnxruntime, and it sits
in a top-level field, so a few lines of protobuf wire-format reading do.
"""

from __future__ import annotations

__all__ = ["OnnxFormatError", "read_opsets"]

_OPSET_IMPORT = 8  # ModelProto.opset_import
_DOMAIN = 1  # OperatorSetIdProto.domain
_VERSION = 2  # OperatorSetIdProto.version


class OnnxFormatError(ValueError):
    """The bytes are not a well-formed ONNX ``ModelProto``."""


def _varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise OnnxFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise OnnxFormatError("varint too long")


def _fields(data: bytes | memoryview) -> list[tuple[int, int, int | memoryview]]:
    """Top-level (field number, wire type, value) triples of one protobuf message."""
    view = memoryview(data)
    out: list[tuple[int, int, int | memoryview]] = []
    pos = 0
    while pos < len(view):
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise OnnxFormatError("field number 0")
        value: int | memoryview
        if wire == 0:
            value, pos = _varint(view, pos)
        elif wire == 1:
            value, pos = int.from_bytes(view[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(view, pos)
            if pos + length > len(view):
                raise OnnxFormatError("length-delimited field runs past the end")
            value, pos = view[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(view[pos : pos + 4], "little"), pos + 4
        else:
            raise OnnxFormatError(f"unsupported wire type {wire}")
        if pos > len(view):
            raise OnnxFormatError("truncated field")
        out.append((number, wire, value))
    return out


def read_opsets(data: bytes) -> dict[str, int]:
    """Opset version per domain (``""`` is the default ``ai.onnx`` domain).

    Raises:
        OnnxFormatError: the bytes are not a ModelProto or declare no opset.
    """
    opsets: dict[str, int] = {}
    for number, wire, value in _fields(data):
        if number != _OPSET_IMPORT:
            continue
        if wire != 2 or not isinstance(value, memoryview):
            raise OnnxFormatError("opset_import is not a message")
        domain, version = "", 0
        for sub_number, sub_wire, sub_value in _fields(value):
            if sub_number == _DOMAIN and isinstance(sub_value, memoryview):
                try:
                    domain = bytes(sub_value).decode()
                except UnicodeDecodeError as exc:
                    raise OnnxFormatError("opset domain is not UTF-8") from exc
            elif sub_number == _VERSION and sub_wire == 0 and isinstance(sub_value, int):
                version = sub_value
        opsets["" if domain == "ai.onnx" else domain] = version
    if not opsets:
        raise OnnxFormatError("no opset_import")
    return opsets
