"""The edge bundle (.ddqb): layout pinned to docs/bundle-format.md, round trips, robustness."""
import json
import math
import os
import struct
import zlib

import numpy as np
import pytest

from ddq_edge import bundle as bundle_mod
from ddq_edge.bitpack import packed_size
from ddq_edge.bundle import (BundleError, bundle_summary, encode_bundle, read_bundle,
                             read_bundle_bytes, write_bundle)
from ddq_edge.ir import OP_KINDS, Graph, Op, QuantParams, Tensor

# --- the spec, written out independently of the implementation ------------------------------
MAGIC = b"DDQB\r\n\x1a\n"
ENTRY = struct.Struct("<IIQQ")
TENSOR = struct.Struct("<IBBBBiii6iIIIII")
OP = struct.Struct("<IIHBBHH")
ATTR = struct.Struct("<IHH")
STRINGS, TENSORS, OPS, IO, METADATA, DATA = range(1, 7)


def _align(n, a):
    return (n + a - 1) // a * a


def assemble(payloads, major=1, minor=0, header_ext=b""):
    """A bundle file from (section id, payload) pairs, laid out as the spec says."""
    header_size = 32 + len(header_ext)
    pos = header_size + ENTRY.size * len(payloads)
    entries = []
    for sid, payload in payloads:
        pos = _align(pos, 64 if sid == DATA else 8)
        entries.append((sid, zlib.crc32(payload), pos, len(payload)))
        pos += len(payload)
    out = bytearray(pos)
    table = b"".join(ENTRY.pack(*e) for e in entries)
    head = MAGIC + struct.pack("<HHIQI", major, minor, header_size, pos, len(entries))
    crc = zlib.crc32(header_ext + table, zlib.crc32(head))
    out[:32] = head + struct.pack("<I", crc)
    out[32:header_size] = header_ext
    out[header_size:header_size + len(table)] = table
    for (sid, _, off, length), (_, payload) in zip(entries, payloads):
        out[off:off + length] = payload
    return bytes(out)


def split(data):
    """[(section id, payload)] in section-table order, plus {id: file offset}."""
    header_size, _, count = struct.unpack_from("<IQI", data, 12)
    sections, offsets = [], {}
    for i in range(count):
        sid, _, off, length = ENTRY.unpack_from(data, header_size + ENTRY.size * i)
        sections.append((sid, bytes(data[off:off + length])))
        offsets[sid] = off
    return sections, offsets


def replace_section(data, sid, fn):
    sections, _ = split(data)
    return assemble([(s, fn(bytearray(p)) if s == sid else p) for s, p in sections])


def string_table(texts):
    buf, refs = bytearray(), {}
    for text in texts:
        raw = text.encode("utf-8")
        refs[text] = len(buf)
        buf += struct.pack("<I", len(raw)) + raw + b"\0"
        buf += b"\0" * (-len(buf) % 4)
    return bytes(buf), refs


def tensor_records(data):
    sections, offsets = split(data)
    payload = dict(sections)[TENSORS]
    count, rsize = struct.unpack_from("<II", payload, 0)
    return [TENSOR.unpack_from(payload, 8 + i * rsize) for i in range(count)], offsets


# --- graphs ---------------------------------------------------------------------------------------
def act_qp(bits, scale=0.05, zero_point=0):
    return QuantParams(scale=np.array([scale], np.float32), zero_point=zero_point, bits=bits,
                       qmin=0, qmax=2 ** bits - 1)


def weight_qp(bits, channels, rng):
    return QuantParams(scale=rng.uniform(1e-3, 0.1, channels).astype(np.float32), zero_point=0,
                       bits=bits, qmin=-(2 ** (bits - 1) - 1), qmax=2 ** (bits - 1) - 1)


def codes(rng, shape, bits):
    hi = 2 ** (bits - 1) - 1
    return rng.integers(-hi, hi + 1, shape).astype(np.int8)


def every_op_graph():
    """quantize -> conv2d (depthwise) -> conv2d -> add -> max_pool -> avg_pool ->
    global_avg_pool -> reshape -> fully_connected -> requantize -> dequantize."""
    rng = np.random.default_rng(7)
    g = Graph()
    T = lambda *a, **k: g.add_tensor(Tensor(*a, **k))  # noqa: E731
    T("x", (1, 3, 8, 8), "float32")
    T("q", (1, 3, 8, 8), "uint8", act_qp(8, 0.02, 128))
    T("dw_w", (3, 1, 3, 3), "int8", weight_qp(3, 3, rng), codes(rng, (3, 1, 3, 3), 3))
    T("dw_b", (3,), "int32", None, rng.integers(-5000, 5000, 3).astype(np.int32))
    T("d", (1, 3, 8, 8), "uint8", act_qp(4, 0.1))
    T("pw_w", (3, 3, 1, 1), "int8", weight_qp(2, 3, rng), codes(rng, (3, 3, 1, 1), 2))
    T("pw_b", (3,), "int32", None, np.array([-(2 ** 31), 0, 2 ** 31 - 1], np.int32))
    T("c", (1, 3, 8, 8), "uint8", act_qp(4, 0.07))
    T("a", (1, 3, 8, 8), "uint8", act_qp(4, 0.12))
    T("m", (1, 3, 4, 4), "uint8", act_qp(4, 0.12))
    T("p", (1, 3, 4, 4), "uint8", act_qp(4, 0.11))
    T("gp", (1, 3, 1, 1), "uint8", act_qp(5, 0.09))
    T("r", (1, 3), "uint8", act_qp(5, 0.09))
    T("fc_w", (5, 3), "int8", weight_qp(8, 5, rng), codes(rng, (5, 3), 8))
    T("fc_b", (5,), "int32", QuantParams(scale=rng.uniform(1e-4, 1e-3, 5), zero_point=0, bits=32,
                                         qmin=-(2 ** 31), qmax=2 ** 31 - 1),
      rng.integers(-10 ** 6, 10 ** 6, 5).astype(np.int32))
    T("f", (1, 5), "uint8", act_qp(8, 0.3, 100))
    T("rq", (1, 5), "uint8", act_qp(6, 0.4, 20))
    T("out", (1, 5), "float32")
    conv = {"stride": [1, 1], "dilation": [1, 1], "act_min": 0, "act_max": 15}
    for op in [
        Op("quantize", "quant", ["x"], ["q"]),
        Op("conv2d", "dw", ["q", "dw_w", "dw_b"], ["d"], {**conv, "padding": [1, 1, 1, 1], "groups": 3}),
        Op("conv2d", "pw", ["d", "pw_w", "pw_b"], ["c"], {**conv, "padding": [0, 0, 0, 0], "groups": 1}),
        Op("add", "add", ["d", "c"], ["a"], {"act_min": 0, "act_max": 15}),
        Op("max_pool", "maxpool", ["a"], ["m"], {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]}),
        Op("avg_pool", "avgpool", ["m"], ["p"], {"kernel": [3, 3], "stride": [1, 1],
                                                 "padding": [1, 1, 1, 1], "act_min": 0, "act_max": 15}),
        Op("global_avg_pool", "gap", ["p"], ["gp"], {"act_min": 0, "act_max": 31}),
        Op("reshape", "flatten", ["gp"], ["r"], {"shape": [1, 3]}),
        Op("fully_connected", "fc", ["r", "fc_w", "fc_b"], ["f"], {"act_min": 0, "act_max": 255}),
        Op("requantize", "requant", ["f"], ["rq"], {"act_min": 0, "act_max": 63}),
        Op("dequantize", "dequant", ["rq"], ["out"]),
    ]:
        g.add_op(op)
    g.inputs, g.outputs = ["x"], ["out"]
    g.metadata = {
        "source": "every-op.pt", "input_shape": [3, 8, 8], "layout": "NCHW",
        "preprocessing": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "input_range": [0.0, 1.0]},
        "labels": ["zero", "eins", "два", "三", "🐍"],
        "layers": [{"layer": "dw", "weight_bits": 3}, {"layer": "fc", "weight_bits": 8}],
        "budget": {"average_weight_bits": 4.25, "budget_met": True, "target_bits": None},
        "converter_version": "0.1.0",
    }
    return g


def pin_graph():
    g = Graph()
    g.add_tensor(Tensor("x", (1, 4), "float32"))
    g.add_tensor(Tensor("q", (1, 4), "uint8", QuantParams(np.float32([0.5]), 3, 8, 0, 255)))
    g.add_tensor(Tensor("w", (2, 4), "int8", QuantParams(np.float32([0.25, 0.125]), 0, 4, -7, 7),
                        np.array([[1, -1, 2, -3], [7, -7, 0, 5]], np.int8)))
    g.add_tensor(Tensor("b", (2,), "int32", None, np.array([100, -200], np.int32)))
    g.add_tensor(Tensor("y", (1, 2), "uint8", QuantParams(np.float32([0.75]), 0, 8, 0, 255)))
    g.add_op(Op("quantize", "quant", ["x"], ["q"]))
    g.add_op(Op("fully_connected", "fc", ["q", "w", "b"], ["y"], {"act_min": 0, "act_max": 255}))
    g.inputs, g.outputs = ["x"], ["y"]
    g.metadata = {"source": "pin", "labels": ["a", "ß"]}
    return g


@pytest.fixture(scope="module")
def every_op_bytes():
    return encode_bundle(every_op_graph())


@pytest.fixture(scope="module")
def pin_bytes():
    return encode_bundle(pin_graph())


def assert_graphs_equal(a: Graph, b: Graph):
    assert list(a.tensors) == list(b.tensors)
    for name, ta in a.tensors.items():
        tb = b.tensors[name]
        assert (tb.name, tb.shape, tb.dtype) == (ta.name, ta.shape, ta.dtype), name
        assert (ta.quant is None) == (tb.quant is None), name
        if ta.quant is not None:
            qa, qb = ta.quant, tb.quant
            assert (qb.zero_point, qb.bits, qb.qmin, qb.qmax) == (qa.zero_point, qa.bits, qa.qmin, qa.qmax)
            assert qb.scale.dtype == np.float32 and qb.scale.shape == qa.scale.shape
            np.testing.assert_array_equal(qb.scale.view(np.uint32), qa.scale.view(np.uint32))
        assert (ta.data is None) == (tb.data is None), name
        if ta.data is not None:
            assert tb.data.dtype == np.dtype(ta.dtype) and tb.data.shape == ta.shape, name
            np.testing.assert_array_equal(tb.data, ta.data)
    assert len(a.ops) == len(b.ops)
    for oa, ob in zip(a.ops, b.ops):
        assert (ob.kind, ob.name, ob.inputs, ob.outputs) == (oa.kind, oa.name, oa.inputs, oa.outputs)
        assert list(ob.attrs) == list(oa.attrs)
        for key, value in oa.attrs.items():
            assert ob.attrs[key] == (list(value) if isinstance(value, (list, tuple)) else value)
            assert type(ob.attrs[key]) is (list if isinstance(value, (list, tuple)) else int)
    assert (b.inputs, b.outputs) == (a.inputs, a.outputs)
    assert b.metadata == json.loads(json.dumps(a.metadata))


# --- round trips ----------------------------------------------------------------------------------
def test_every_op_kind_round_trips_field_by_field(tmp_path, every_op_bytes):
    graph = every_op_graph()
    assert {op.kind for op in graph.ops} == set(OP_KINDS)
    path = write_bundle(graph, tmp_path / "model.ddqb")
    assert path == tmp_path / "model.ddqb" and path.read_bytes() == every_op_bytes
    back = read_bundle(path)
    assert_graphs_equal(graph, back)
    assert_graphs_equal(graph, read_bundle_bytes(every_op_bytes))
    assert encode_bundle(back) == every_op_bytes  # deterministic and a fixed point
    assert sorted(os.listdir(tmp_path)) == ["model.ddqb"]


def test_unquantized_int8_constant_uses_full_8_bit_range():
    g = Graph()
    g.add_tensor(Tensor("k", (2, 3), "int8", None, np.array([[-128, 127, 0], [1, -1, -5]], np.int8)))
    g.add_tensor(Tensor("f", (4,), "float32", None, np.float32([np.nan, -0.0, np.inf, 1e-45])))
    g.add_tensor(Tensor("u", (3,), "uint8", None, np.array([0, 255, 7], np.uint8)))
    g.add_tensor(Tensor("e", (0, 4), "int8", QuantParams(np.float32([1.0]), 0, 4, -7, 7),
                        np.zeros((0, 4), np.int8)))
    back = read_bundle_bytes(encode_bundle(g))
    assert_graphs_equal(g, back)
    np.testing.assert_array_equal(back.tensors["f"].data.view(np.uint32),
                                  g.tensors["f"].data.view(np.uint32))


def test_metadata_with_numpy_values_and_non_finite_floats():
    g = pin_graph()
    g.metadata = {"a": np.float32(0.5), "b": np.int64(3), "c": np.arange(3), "d": float("nan"),
                  "e": (1, 2), "nested": {"x": [np.bool_(True), None]}}
    assert read_bundle_bytes(encode_bundle(g)).metadata == {
        "a": 0.5, "b": 3, "c": [0, 1, 2], "d": None, "e": [1, 2], "nested": {"x": [True, None]}}


def test_negative_and_scalar_attrs_round_trip():
    g = pin_graph()
    g.ops[1].attrs = {"act_min": -128, "act_max": np.int64(127), "shape": (1, -1), "empty": []}
    back = read_bundle_bytes(encode_bundle(g))
    assert back.ops[1].attrs == {"act_min": -128, "act_max": 127, "shape": [1, -1], "empty": []}


# --- the layout, byte for byte ----------------------------------------------------------------------
def test_pinned_byte_layout(pin_bytes):
    strings, ref = string_table(["x", "q", "w", "b", "y", "quant", "fc", "act_min", "act_max"])
    assert len(strings) == 84 and ref["quant"] == 40 and ref["act_max"] == 72
    data = (struct.pack("<f", 0.5)                       # q scale      @0
            + struct.pack("<2f", 0.25, 0.125)            # w scales     @4
            + bytes([0xF1, 0xD2, 0x97, 0x50])            # w, 4-bit     @12
            + struct.pack("<2i", 100, -200)              # b            @16
            + struct.pack("<f", 0.75))                   # y scale      @24
    z4 = [0, 0, 0, 0]
    tensors = struct.pack("<II", 5, 64) + b"".join([
        TENSOR.pack(ref["x"], 0, 2, 0, 0, 0, 0, 0, 1, 4, *z4, 0, 0, 0, 0, 0),
        TENSOR.pack(ref["q"], 1, 2, 1, 8, 3, 0, 255, 1, 4, *z4, 1, 0, 0, 0, 0),
        TENSOR.pack(ref["w"], 2, 2, 3, 4, 0, -7, 7, 2, 4, *z4, 2, 4, 12, 4, 0),
        TENSOR.pack(ref["b"], 3, 1, 2, 0, 0, 0, 0, 2, 0, *z4, 0, 0, 16, 8, 0),
        TENSOR.pack(ref["y"], 1, 2, 1, 8, 0, 0, 255, 1, 2, *z4, 1, 24, 0, 0, 0),
    ])
    ops = (struct.pack("<II", 2, 0)
           + OP.pack(24, ref["quant"], 0, 1, 1, 0, 0) + struct.pack("<2I", 0, 1)
           + OP.pack(56, ref["fc"], 3, 3, 1, 2, 0) + struct.pack("<4I", 1, 2, 3, 4)
           + ATTR.pack(ref["act_min"], 0, 1) + struct.pack("<i", 0)
           + ATTR.pack(ref["act_max"], 0, 1) + struct.pack("<i", 255))
    io = struct.pack("<II", 1, 1) + struct.pack("<2I", 0, 4)
    meta = '{"source":"pin","labels":["a","ß"]}'.encode("utf-8")
    expected = assemble([(STRINGS, strings), (TENSORS, tensors), (OPS, ops), (IO, io),
                         (METADATA, meta), (DATA, data)])
    assert pin_bytes == expected
    # header: magic, version 1.0, header_size 32, file size, 6 sections
    assert pin_bytes[:16] == bytes.fromhex("444451420d0a1a0a0100000020000000")
    assert struct.unpack_from("<QI", pin_bytes, 16) == (len(pin_bytes), 6)
    # section table: STRINGS right after the table (176), DATA 64-aligned and last
    table = [ENTRY.unpack_from(pin_bytes, 32 + 24 * i) for i in range(6)]
    assert [(e[0], e[2], e[3]) for e in table] == [
        (1, 176, 84), (2, 264, 328), (3, 592, 88), (4, 680, 16), (5, 696, len(meta)), (6, 768, 28)]
    assert len(pin_bytes) == 796
    assert zlib.crc32(pin_bytes) == 0xB057068D  # the hex dump in docs/bundle-format.md, section 16


def test_data_blobs_of_64_bytes_or_more_are_64_byte_aligned():
    rng = np.random.default_rng(1)
    g = Graph()
    g.add_tensor(Tensor("x", (1, 8), "uint8", act_qp(8)))
    for i, (out, inp, bits) in enumerate([(3, 5, 3), (17, 9, 5), (64, 1, 8), (2, 2, 2), (33, 7, 4)]):
        g.add_tensor(Tensor(f"w{i}", (out, inp), "int8", weight_qp(bits, out, rng), codes(rng, (out, inp), bits)))
        g.add_tensor(Tensor(f"b{i}", (out,), "int32", None, rng.integers(-9, 9, out).astype(np.int32)))
    data = encode_bundle(g)
    records, offsets = tensor_records(data)
    assert offsets[DATA] % 64 == 0
    seen_large = seen_small = 0
    for rec in records:
        for off, size in ((rec[15], 4 * rec[14]), (rec[16], rec[17])):  # scales, data
            if size == 0:
                continue
            assert (offsets[DATA] + off) % 4 == 0
            if size >= 64:
                assert (offsets[DATA] + off) % 64 == 0, (rec, off, size)
                seen_large += 1
            else:
                seen_small += 1
    assert seen_large >= 4 and seen_small >= 4
    assert_graphs_equal(g, read_bundle_bytes(data))


# --- atomic writes --------------------------------------------------------------------------------
def test_invalid_graph_writes_nothing(tmp_path):
    g = pin_graph()
    g.ops.reverse()  # fc reads q before it is produced
    with pytest.raises(ValueError, match="before it is produced"):
        write_bundle(g, tmp_path / "m.ddqb")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fail_in", ["fsync", "replace", "write"])
def test_failure_mid_write_leaves_no_temp_file_and_keeps_old_file(tmp_path, monkeypatch, fail_in):
    target = tmp_path / "m.ddqb"
    target.write_bytes(b"old contents")

    def boom(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if fail_in == "write":
        real_fdopen = os.fdopen

        class Broken:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

            def fileno(self):
                return self.f.fileno()

            def write(self, payload):
                self.f.write(payload[: len(payload) // 2])
                boom()

        monkeypatch.setattr(bundle_mod.os, "fdopen", lambda fd, mode: Broken(real_fdopen(fd, mode)))
    else:
        monkeypatch.setattr(bundle_mod.os, fail_in, boom)
    with pytest.raises(OSError, match="No space"):
        write_bundle(pin_graph(), target)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["m.ddqb"]
    assert target.read_bytes() == b"old contents"


def test_unwritable_graphs_raise_value_error_naming_the_place(tmp_path):
    g = pin_graph()
    g.tensors["w"].data = np.array([[1, -8, 2, -3], [7, -7, 0, 5]], np.int8)  # -8: not narrow 4-bit
    with pytest.raises(ValueError, match=r"tensor 'w'.*4-bit narrow-range"):
        write_bundle(g, tmp_path / "a.ddqb")
    g = pin_graph()
    g.ops[1].attrs["alpha"] = 0.5
    with pytest.raises(ValueError, match=r"op 'fc'.*attribute 'alpha'.*int"):
        write_bundle(g, tmp_path / "a.ddqb")
    g = pin_graph()
    g.ops[1].attrs["act_max"] = 2 ** 31
    with pytest.raises(ValueError, match="int32"):
        write_bundle(g, tmp_path / "a.ddqb")
    g = pin_graph()
    g.tensors["b"].data = np.array([1, 2, 3], np.int32)
    with pytest.raises(ValueError, match=r"tensor 'b'.*shape"):
        write_bundle(g, tmp_path / "a.ddqb")
    g = pin_graph()
    g.tensors["b"].data = np.array([1, 2 ** 40])
    with pytest.raises(ValueError, match=r"tensor 'b'.*not exactly representable"):
        write_bundle(g, tmp_path / "a.ddqb")
    g = pin_graph()
    g.metadata = {"when": object()}
    with pytest.raises(ValueError, match="JSON"):
        write_bundle(g, tmp_path / "a.ddqb")
    assert os.listdir(tmp_path) == []


# --- robustness ---------------------------------------------------------------------------------------
def test_every_truncation_is_a_bundle_error(pin_bytes, every_op_bytes):
    for data in (pin_bytes, every_op_bytes):
        for n in range(len(data)):
            with pytest.raises(BundleError, match="truncated|bad magic"):
                read_bundle_bytes(data[:n], "model.ddqb")
    with pytest.raises(BundleError, match=r"model\.ddqb: truncated: section DATA ends at byte 796 "
                                          r"but the file has 790 bytes"):
        read_bundle_bytes(pin_bytes[:790], "model.ddqb")
    with pytest.raises(BundleError, match="unexpected bytes after the end"):
        read_bundle_bytes(pin_bytes + b"\0", "model.ddqb")


def test_random_single_bit_flips_are_bundle_errors(every_op_bytes):
    data = every_op_bytes
    records, offsets = tensor_records(data)
    weight_bytes = set()
    for rec in records:
        if rec[1] == 2 and rec[3] & 2:  # int8 constants
            start = offsets[DATA] + rec[16]
            weight_bytes.update(range(start, start + rec[17]))
    assert weight_bytes
    rng = np.random.default_rng(1234)
    positions = list(rng.integers(0, len(data), 300)) + sorted(weight_bytes)
    for pos in positions:
        bit = int(rng.integers(0, 8))
        flipped = bytearray(data)
        flipped[pos] ^= 1 << bit
        with pytest.raises(BundleError) as info:
            read_bundle_bytes(bytes(flipped), "model.ddqb")
        assert str(info.value).startswith("model.ddqb: ")
        if pos in weight_bytes:
            assert "checksum mismatch in section DATA" in str(info.value)


def test_mutations_behind_valid_checksums_never_escape_as_other_errors(every_op_bytes, pin_bytes):
    """Corrupt section payloads but fix the CRCs: the parser's own validation must hold."""
    rng = np.random.default_rng(99)
    outcomes = {"error": 0, "ok": 0}
    for data in (pin_bytes, every_op_bytes):
        sections, _ = split(data)
        for trial in range(600):
            k = int(rng.integers(0, len(sections)))
            sid, payload = sections[k]
            payload = bytearray(payload)
            action = trial % 4
            if action == 3:  # drop or duplicate a section
                mutated = list(sections)
                if rng.random() < 0.5:
                    del mutated[k]
                else:
                    mutated.append(sections[k])
            else:
                if action == 2 or not payload:  # truncate or extend
                    cut = int(rng.integers(0, len(payload) + 1))
                    payload = payload[:cut] if rng.random() < 0.7 else payload + bytes(int(rng.integers(1, 9)))
                elif action == 0:  # a random byte
                    payload[int(rng.integers(0, len(payload)))] = int(rng.integers(0, 256))
                else:  # a random or boundary 32-bit word at a 4-byte boundary
                    pos = int(rng.integers(0, len(payload)))
                    pos -= pos % 4
                    word = int(rng.choice([0, 1, 7, 63, 64, 255, 2 ** 16, 2 ** 31, 2 ** 32 - 1,
                                           int(rng.integers(0, 2 ** 32))]))
                    payload[pos:pos + 4] = struct.pack("<I", word)[:len(payload) - pos]
                mutated = [(s, bytes(payload) if i == k else p) for i, (s, p) in enumerate(sections)]
            try:
                read_bundle_bytes(assemble(mutated), "fuzz.ddqb")
                outcomes["ok"] += 1
            except BundleError as error:
                assert str(error).startswith("fuzz.ddqb: ")
                outcomes["error"] += 1
    assert outcomes["error"] > 600


def _pin_mutation(pin_bytes, sid, fn):
    return replace_section(pin_bytes, sid, fn)


def _set(offset, fmt, *values):
    def fn(payload):
        struct.pack_into(fmt, payload, offset, *values)
        return bytes(payload)
    return fn


T0, T1, T2 = 8, 8 + 64, 8 + 128  # TENSORS record offsets of x, q, w in the pinned example


@pytest.mark.parametrize("sid, fn, message", [
    (TENSORS, _set(T0 + 4, "<B", 9), "tensor #0 ('x'): dtype code 9"),
    (TENSORS, _set(T0 + 5, "<B", 7), "ndim 7 exceeds 6"),
    (TENSORS, _set(T0 + 20 + 4 * 3, "<i", 5), "shape fields"),
    (TENSORS, _set(T0 + 20, "<i", -1), "shape fields"),
    (TENSORS, _set(T0 + 6, "<B", 0x80), "unknown flag bits"),
    (TENSORS, _set(T0 + 60, "<I", 1), "reserved field"),
    (TENSORS, _set(T0 + 8, "<i", 1), "not quantized"),
    (TENSORS, _set(T0, "<I", 1000), "string offset 1000 is outside section STRINGS"),
    (TENSORS, _set(T0, "<I", 2), "not a multiple of 4"),
    (TENSORS, _set(T1, "<I", 0), "duplicate tensor name"),
    (TENSORS, _set(T1 + 7, "<B", 9), "quant bits 9 outside 1..8 for uint8"),
    (TENSORS, _set(T1 + 12, "<ii", 5, 4), "qmin 5 > qmax 4"),
    (TENSORS, _set(T1 + 44, "<I", 0), "scale_count is 0"),
    (TENSORS, _set(T2 + 48, "<I", 10 ** 6), "bytes 1000000..1000008 lie outside section DATA"),
    (TENSORS, _set(T2 + 44, "<I", 10 ** 6), "a 4000000-byte blob must start at a multiple of 64"),
    (TENSORS, _set(T2 + 56, "<I", 5), "data_size is 5 bytes, expected 4"),
    (TENSORS, _set(T2 + 52, "<I", 13), "not a multiple of 4"),
    (TENSORS, _set(T2 + 7, "<B", 1), "packed at 2..8 bits"),
    (TENSORS, _set(4, "<I", 60), "record_size is 60"),
    (TENSORS, _set(0, "<I", 6), "6 records of 64 bytes need"),
    (OPS, _set(8 + 8, "<H", 42), "op kind code 42 is unknown"),
    (OPS, _set(8 + 10, "<B", 2), "2 input(s) and 1 output(s), expected 1 and 1"),
    (OPS, _set(8 + 20, "<I", 99), "output 0 refers to tensor #99 but the file has 5 tensors"),
    (OPS, _set(8, "<I", 23), "record size 23"),
    (OPS, _set(8, "<I", 28), "record size 28 but its fields take 24 bytes"),
    (OPS, _set(32 + 12, "<H", 3), "attribute #2: runs past the end"),
    (OPS, _set(64 + 4, "<H", 7), "value type 7"),
    (OPS, _set(64 + 6, "<H", 2), "an int attribute has count 1"),
    (OPS, _set(76, "<I", 60), "duplicate attribute"),
    (OPS, _set(0, "<I", 100), "100 ops cannot fit in 88 bytes"),
    (OPS, _set(0, "<I", 3), "op #2: record at byte 88 runs past the end"),
    (OPS, _set(0, "<I", 1), "unexpected bytes after the last op"),
    (STRINGS, _set(40, "<I", 4), "op #0: name: string at offset 40 is not NUL-terminated"),
    (IO, _set(12, "<I", 77), "graph output 0 refers to tensor #77"),
    (IO, _set(0, "<I", 3), "need 24 bytes"),
    (IO, _set(8, "<I", 1), "invalid graph: op 'quant' reads 'x' before it is produced"),
    (STRINGS, _set(4, "<B", 0xFF), "not valid UTF-8"),
    (STRINGS, _set(4, "<B", 0), "contains a NUL byte"),
    (STRINGS, _set(0, "<I", 10 ** 6), "runs past the end of section STRINGS"),
    (METADATA, lambda p: b"[1, 2]", "expected a JSON object, got list"),
    (METADATA, lambda p: b"{\"a\": ", "not valid JSON"),
    (METADATA, lambda p: b"[" * 200000, "not valid JSON"),
    (METADATA, lambda p: b"{\"a\": \"\xff\"}", "METADATA: not valid UTF-8"),
    (DATA, _set(12, "<B", 0x81), "weight code -8 is outside the 4-bit narrow range"),
])
def test_malformed_fields_are_named(pin_bytes, sid, fn, message):
    bad = _pin_mutation(pin_bytes, sid, fn)
    with pytest.raises(BundleError, match="^model.ddqb: ") as info:
        read_bundle_bytes(bad, "model.ddqb")
    assert message in str(info.value)


def test_swapped_op_order_is_an_invalid_graph(pin_bytes):
    def swap(payload):
        first, second = payload[8:32], payload[32:88]
        return bytes(payload[:8] + second + first)
    with pytest.raises(BundleError, match="invalid graph: op 'fc' reads 'q' before it is produced"):
        read_bundle_bytes(_pin_mutation(pin_bytes, OPS, swap), "model.ddqb")


def test_non_zero_padding_bits_in_the_last_packed_byte(every_op_bytes):
    records, _ = tensor_records(every_op_bytes)
    dw = records[2]  # dw_w: 27 codes x 3 bits = 81 bits, 7 unused bits in the last byte
    assert dw[17] == 11

    def poison(payload):
        payload[dw[16] + dw[17] - 1] |= 0x80
        return bytes(payload)
    with pytest.raises(BundleError, match="unused high bits"):
        read_bundle_bytes(replace_section(every_op_bytes, DATA, poison))


def test_container_errors(pin_bytes):
    def patched(offset, fmt, *values, fix_crc=True):
        data = bytearray(pin_bytes)
        struct.pack_into(fmt, data, offset, *values)
        if fix_crc:
            header_size, _, count = struct.unpack_from("<IQI", data, 12)
            crc = zlib.crc32(data[32:header_size + 24 * count], zlib.crc32(data[:28]))
            struct.pack_into("<I", data, 28, crc)
        return bytes(data)

    cases = [
        (b"PK\x03\x04" + pin_bytes[4:], "bad magic"),
        (b"DDX", "bad magic"),
        (b"DDQ", "truncated: the header needs 32 bytes but the file has 3 bytes"),
        (b"", "truncated: the header needs 32 bytes but the file has 0 bytes"),
        (patched(28, "<I", 0, fix_crc=False), "checksum mismatch in the header and section table"),
        (patched(32 + 4, "<I", 0), "checksum mismatch in section STRINGS"),
        (patched(32 + 8, "<Q", 180), "section STRINGS: offset 180 is not a multiple of 8"),
        (patched(32 + 8, "<Q", 168), "lies inside the header and section table"),
        (patched(32 + 24 * 5 + 8, "<Q", 712), "section DATA: offset 712 is not a multiple of 64"),
        (patched(32 + 24 + 8, "<Q", 256), "section TENSORS (bytes 256..584) overlaps"),
        (patched(32 + 24, "<I", 1), "section STRINGS appears more than once"),
        (patched(12, "<I", 40), "header: header_size is 40, expected 32"),
        (patched(24, "<I", 65), "section_count is 65"),
        (patched(24, "<I", 5), "padding byte 152 between sections is 0x06"),  # the 6th entry
        (patched(32 + 24 * 5, "<I", 77), "missing section DATA"),
        (patched(32 + 24 * 5 + 16, "<Q", 10 ** 6), "truncated: section DATA ends at byte 1000768"),
    ]
    padded = bytearray(pin_bytes)
    padded[260] = 1  # a padding byte between STRINGS (ends at 260) and TENSORS (starts at 264)
    cases.append((bytes(padded), "padding byte 260 between sections is 0x01"))
    for data, message in cases:
        with pytest.raises(BundleError) as info:
            read_bundle_bytes(data, "model.ddqb")
        assert message in str(info.value), (message, str(info.value))


def test_newer_major_is_refused_newer_minor_accepted(pin_bytes):
    sections, _ = split(pin_bytes)
    for major in (2, 3):
        with pytest.raises(BundleError, match=rf"model\.ddqb: version {major}\.0 is newer than this "
                                              r"reader \(1\.x\)"):
            read_bundle_bytes(assemble(sections, major=major), "model.ddqb")
    with pytest.raises(BundleError, match="version 0.9 is not supported"):
        read_bundle_bytes(assemble(sections, major=0, minor=9), "model.ddqb")
    # a 1.7 file: a longer header, an unknown section, longer tensor and op records
    tensors = dict(sections)[TENSORS]
    count = struct.unpack_from("<I", tensors)[0]
    longer = struct.pack("<II", count, 72) + b"".join(
        tensors[8 + 64 * i: 8 + 64 * (i + 1)] + b"future!!" for i in range(count))
    ops = bytearray(dict(sections)[OPS])
    ops_longer = bytearray(ops[:8])
    pos = 8
    while pos < len(ops):
        size = struct.unpack_from("<I", ops, pos)[0]
        record = bytearray(ops[pos:pos + size] + b"more")
        struct.pack_into("<I", record, 0, size + 4)
        ops_longer += record
        pos += size
    future = [(sid, longer if sid == TENSORS else bytes(ops_longer) if sid == OPS else p)
              for sid, p in sections] + [(77, b"a section from the future")]
    back = read_bundle_bytes(assemble(future, minor=7, header_ext=b"newfield"), "model.ddqb")
    assert_graphs_equal(pin_graph(), back)
    assert_graphs_equal(pin_graph(), read_bundle_bytes(assemble(sections, minor=1)))
    # the same extensions in a 1.0 file are errors: 1.0 records have exact sizes
    with pytest.raises(BundleError, match="header_size is 40"):
        read_bundle_bytes(assemble(future, minor=0, header_ext=b"newfield"))
    with pytest.raises(BundleError, match="record_size is 72"):
        read_bundle_bytes(assemble(future, minor=0))
    # unknown sections are skipped in any 1.x file
    assert_graphs_equal(pin_graph(), read_bundle_bytes(assemble(sections + [(77, b"x")])))


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(BundleError, match="missing.ddqb: cannot read"):
        read_bundle(tmp_path / "missing.ddqb")
    (tmp_path / "text.ddqb").write_text("hello")
    with pytest.raises(BundleError, match=r"text\.ddqb: bad magic"):
        read_bundle(tmp_path / "text.ddqb")


# --- size -----------------------------------------------------------------------------------------------
def synthetic_model(layers=42, channels=240, groups=4, bits=4, hw=14):
    """~600k 4-bit weights, ~10k int32 biases and per-channel scales, a realistic metadata dict."""
    rng = np.random.default_rng(5)
    g = Graph()
    g.add_tensor(Tensor("input", (1, channels, hw, hw), "float32"))
    g.add_tensor(Tensor("act0", (1, channels, hw, hw), "uint8", act_qp(8)))
    g.add_op(Op("quantize", "quantize_input", ["input"], ["act0"]))
    prev = "act0"
    for i in range(layers):
        w_shape = (channels, channels // groups, 1, 1)
        g.add_tensor(Tensor(f"features.{i}.conv_weight", w_shape, "int8",
                            weight_qp(bits, channels, rng), codes(rng, w_shape, bits)))
        g.add_tensor(Tensor(f"features.{i}.conv_bias", (channels,), "int32", None,
                            rng.integers(-2 ** 20, 2 ** 20, channels).astype(np.int32)))
        out = f"features.{i}.conv_out"
        g.add_tensor(Tensor(out, (1, channels, hw, hw), "uint8", act_qp(4, 0.05 + i / 1000)))
        g.add_op(Op("conv2d", f"features.{i}.conv", [prev, f"features.{i}.conv_weight",
                                                     f"features.{i}.conv_bias"], [out],
                    {"stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1],
                     "groups": groups, "act_min": 0, "act_max": 15}))
        prev = out
    g.add_tensor(Tensor("output", (1, channels, hw, hw), "float32"))
    g.add_op(Op("dequantize", "dequantize_output", [prev], ["output"]))
    g.inputs, g.outputs = ["input"], ["output"]
    g.metadata = {
        "source": "synthetic.pt", "architecture": "synthetic-grouped", "input_shape": [channels, hw, hw],
        "layout": "NCHW", "preprocessing": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                                             "input_range": [0.0, 1.0]},
        "labels": [f"class_{k}" for k in range(100)], "task": "synthetic",
        "layers": [{"layer": f"features.{i}.conv", "op": "conv2d", "weight_bits": bits, "act_bits": 4,
                    "weights": channels * channels // groups, "accumulator_bound": 123456789}
                   for i in range(layers)],
        "budget": {"average_weight_bits": 4.0, "average_act_bits": 4.0, "effective_bops_bits": 4.0,
                   "target_bits": 4.0, "target_act_bits": 4.0, "budget": "bops", "budget_met": True},
        "converter_version": "0.1.0",
    }
    return g


def test_size_stays_within_the_rule(tmp_path):
    g = synthetic_model()
    weights = sum(t.data.size for t in g.tensors.values() if t.dtype == "int8")
    biases = sum(t.data.size for t in g.tensors.values() if t.dtype == "int32")
    scales = sum(t.quant.scale.size for t in g.tensors.values() if t.quant is not None and t.is_constant)
    assert 590_000 <= weights <= 610_000 and 9_900 <= biases <= 10_200
    ideal = math.ceil((4 * weights + 32 * biases + 32 * scales) / 8)
    path = write_bundle(g, tmp_path / "synthetic.ddqb")
    size = path.stat().st_size
    limit = 1.05 * ideal + 16 * 1024
    summary = bundle_summary(path)
    print(f"\nsize test: {weights} 4-bit weights, {biases} biases, {scales} per-channel scales; ideal {ideal} B, "
          f"file {size} B, overhead {size - ideal} B ({(size / ideal - 1) * 100:.2f} %), "
          f"limit {limit:.0f} B; sections "
          + ", ".join(f"{k} {v['length']}" for k, v in summary["sections"].items())
          + f"; DATA padding {summary['data_bytes']['padding']} B")
    assert size <= limit
    assert summary["ideal_bytes"] == ideal and summary["overhead_bytes"] == size - ideal
    assert_graphs_equal(g, read_bundle(path))


def test_bundle_summary_accounts_for_every_byte(tmp_path):
    path = write_bundle(every_op_graph(), tmp_path / "m.ddqb")
    s = bundle_summary(path)
    assert s["version"] == "1.0" and s["file_bytes"] == path.stat().st_size
    assert list(s["sections"]) == ["STRINGS", "TENSORS", "OPS", "IO", "METADATA", "DATA"]
    assert s["header_bytes"] == 32 + 6 * 24
    assert s["header_bytes"] + sum(v["length"] for v in s["sections"].values()) \
        + s["section_padding_bytes"] == s["file_bytes"]
    d = s["data_bytes"]
    assert d["weights"] == packed_size(27, 3) + packed_size(9, 2) + packed_size(15, 8)
    assert d["biases"] == 4 * (3 + 3 + 5)
    assert sum(d.values()) == s["sections"]["DATA"]["length"] and d["padding"] >= 0
    assert (s["tensors"], s["constants"], s["ops"]) == (18, 6, 11)
    json.dumps(s)  # plain JSON for `inspect --json`
