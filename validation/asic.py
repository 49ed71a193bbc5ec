"""Optional drivers for two public accelerator simulators, used to validate the ASIC cost model.

- :func:`scalesim_layer` runs one convolution through SCALE-Sim (cycle-accurate systolic array:
  cycles and SRAM/DRAM access counts, no energy).
- :func:`zigzag_layer` runs one convolution through ZigZag (analytical energy, latency and
  access counts) on a hardware description built here from explicit parameters, with the spatial
  unrolling and the temporal loop order pinned per dataflow.

Neither tool is a dependency of autonba: both are imported inside the functions, and a missing
tool raises :class:`~autonba.errors.AutonbaError` naming ``pip install autonba[validate]``.
Both tools write files on every run; each call works in its own temporary folder.
Tested with ``scalesim`` 3.0.0 and ``zigzag-dse`` 3.9.1 (with ``numpy<2.4`` and ``six``).
"""
from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any, Literal

from autonba.errors import AutonbaError

Dataflow = Literal["os", "ws", "is"]
_OPERANDS = ("W", "I", "O")
_INSTALL_HINT = "pip install autonba[validate]"


def _require(module: str, dist: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:  # the tool itself, or one of its undeclared dependencies (six for ZigZag)
        raise AutonbaError(
            f"validation against {dist} needs the optional simulators ({e}); "
            f"install them with `{_INSTALL_HINT}`") from e


def _check_dataflow(dataflow: str) -> None:
    if dataflow not in ("os", "ws", "is"):
        raise AutonbaError(f"dataflow must be 'os', 'ws' or 'is', got {dataflow!r}")


def output_size(padded: int, kernel: int, stride: int) -> int:
    """Output size as SCALE-Sim computes it from a padded input: ceil((H - F) / S) + 1."""
    if kernel > padded:
        raise AutonbaError(f"kernel {kernel} larger than the (padded) input {padded}")
    return -(-(padded - kernel) // stride) + 1


def _depth_multiplier(channels: int, filters: int) -> int:
    if filters % channels:
        raise AutonbaError(f"a depthwise layer needs filters as a multiple of channels, got {filters} / {channels}")
    return filters // channels


# ----------------------------------------------------------------------------------------------
# SCALE-Sim
# ----------------------------------------------------------------------------------------------

_SCALESIM_CFG = """[general]
run_name = autonba

[architecture_presets]
ArrayHeight = {rows}
ArrayWidth = {cols}
IfmapSramSzkB = {ifmap_kib}
FilterSramSzkB = {filter_kib}
OfmapSramSzkB = {ofmap_kib}
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Bandwidth = {bw}
Dataflow = {dataflow}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = {bw}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = {bw}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = {bw_mode}
UseRamulatorTrace = False
"""

_DETAIL_KEYS = (  # SCALE-Sim's detailed access report, in its order; counts are in words
    "ifmap_sram_start", "ifmap_sram_stop", "ifmap_sram_reads",
    "filter_sram_start", "filter_sram_stop", "filter_sram_reads",
    "ofmap_sram_start", "ofmap_sram_stop", "ofmap_sram_writes",
    "ifmap_dram_start", "ifmap_dram_stop", "ifmap_dram_reads",
    "filter_dram_start", "filter_dram_stop", "filter_dram_reads",
    "ofmap_dram_start", "ofmap_dram_stop", "ofmap_dram_writes",
)
_COUNT_KEYS = tuple(k for k in _DETAIL_KEYS if k.endswith(("reads", "writes")))


def scalesim_layer(ifmap_h: int, ifmap_w: int, fh: int, fw: int, channels: int, filters: int,
                   stride: int, rows: int, cols: int, dataflow: Dataflow, depthwise: bool = False,
                   groups: int = 1, sram_kib: tuple[int, int, int] = (4096, 4096, 4096),
                   bandwidth: int | None = None, memory: bool = True) -> dict[str, Any]:
    """Simulate one convolution with SCALE-Sim on a ``rows`` x ``cols`` systolic array.

    ``ifmap_h``/``ifmap_w`` are the padded input sizes (SCALE-Sim has no padding; its output size is
    ``ceil((H - F) / S) + 1``, see :func:`output_size`). ``sram_kib`` are the ifmap, filter and
    ofmap SRAM sizes in KiB (SCALE-Sim's words are one byte). ``bandwidth`` None lets SCALE-Sim
    compute the DRAM bandwidth it needs (its ``CALC`` mode: no stalls from DRAM); an integer is the
    DRAM interface bandwidth in words per cycle for each of ifmap, filter and ofmap (``USER`` mode).

    Returns ``compute_cycles`` (cycles of the array alone: SCALE-Sim's "Total Cycles" less its
    stall cycles), ``total_cycles`` (SCALE-Sim's "Total Cycles": compute plus stalls),
    ``stall_cycles``, ``total_cycles_with_prefetch`` (from the first DRAM read to the last DRAM
    write), ``utilisation_pct``, ``mapping_efficiency_pct``, ``compute_utilisation_pct``, the
    SRAM/DRAM read and write counts in words (``ifmap_sram_reads``, ``filter_sram_reads``,
    ``ofmap_sram_writes``, ``ifmap_dram_reads``, ``filter_dram_reads``, ``ofmap_dram_writes``),
    ``ofmap`` (OY, OX) and ``layers`` (how many layers SCALE-Sim simulated).

    Depthwise (``depthwise=True``, ``filters`` a multiple m of ``channels``): SCALE-Sim simulates a
    layer whose name contains "DP" as ``channels`` separate single-channel layers with m filters
    each (its topology reader expands the row; each channel gets its own memory system and is
    reported as its own layer). The figures returned here are summed over those channel layers,
    so the array's "- 1" of the last fold appears once per channel:
    ``compute_cycles = channels * (folds * cycles_per_fold - 1)`` with T = FH*FW and K = m.
    Utilisation is recomputed over the sum (MACs / (cycles * PEs)); mapping and compute efficiency
    are means weighted by each channel layer's compute cycles.

    Grouped (``groups`` = g > 1, not depthwise): SCALE-Sim has no grouped convolution, so the
    topology lists the g groups as g layers of ``channels / g`` -> ``filters / g`` channels, run one
    after another; the figures are summed over them as for a depthwise layer.

    ``memory=False`` skips SCALE-Sim's cycle-by-cycle memory simulation (nearly all of its run time
    on large layers) and keeps only its array model: the demand matrices it builds hold one row per
    array cycle, and with the memory system unable to stall (the default large SRAMs and ``CALC``
    bandwidth) the memory simulation reports "Total Cycles" = rows - 1, so ``compute_cycles`` is
    that. The SRAM read/write counts come from the array model as before; ``stall_cycles`` is 0
    and the DRAM counts and ``total_cycles_with_prefetch`` are None. Needs ``bandwidth=None``.
    """
    _check_dataflow(dataflow)
    if rows < 1 or cols < 1 or stride < 1:
        raise AutonbaError("rows, cols and stride must be positive")
    if not memory and bandwidth is not None:
        raise AutonbaError("memory=False needs bandwidth=None (a user DRAM bandwidth can stall the array)")
    if groups < 1 or channels % groups or filters % groups or (depthwise and groups > 1):
        raise AutonbaError(f"groups={groups} must divide channels={channels} and filters={filters} "
                           "(a depthwise layer takes depthwise=True and groups=1)")
    oy, ox = output_size(ifmap_h, fh, stride), output_size(ifmap_w, fw, stride)
    k_col = _depth_multiplier(channels, filters) if depthwise else filters // groups
    c_row = channels // groups
    names = ["convDP"] if depthwise else ["conv"] if groups == 1 else [f"conv_g{i}" for i in range(groups)]
    scale_sim = _require("scalesim.scale_sim", "SCALE-Sim")

    with tempfile.TemporaryDirectory(prefix="autonba-scalesim-") as tmp:
        cfg = os.path.join(tmp, "arch.cfg")
        topo = os.path.join(tmp, "layer.csv")
        layout = os.path.join(tmp, "layout.csv")
        with open(cfg, "w") as f:
            f.write(_SCALESIM_CFG.format(
                rows=rows, cols=cols, ifmap_kib=sram_kib[0], filter_kib=sram_kib[1], ofmap_kib=sram_kib[2],
                dataflow=dataflow, bw=bandwidth or 10, bw_mode="CALC" if bandwidth is None else "USER"))
        with open(topo, "w") as f:
            f.write("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, "
                    "Strides,\n")
            f.writelines(f"{name}, {ifmap_h}, {ifmap_w}, {fh}, {fw}, {c_row}, {k_col}, {stride},\n" for name in names)
        # SCALE-Sim reads a layout file (a row per topology row) even with custom layouts off; its values
        # are then unused. Column 5 is expanded like the topology's channel column for "DP" layers: C.
        with open(layout, "w") as f:
            f.write("Layer name," + ",".join(f"f{i}" for i in range(20)) + ",\n")
            vals = [1, 1, 1, 1, c_row, 1, 0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3]
            f.writelines(name + "," + ",".join(map(str, vals)) + ",\n" for name in names)
        with contextlib.redirect_stdout(io.StringIO()), _array_model_only(not memory):
            sim = scale_sim.scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                                     layout=layout, input_type_gemm=False)
            sim.run_scale(top_path=tmp)
        layers = sim.runner.single_layer_sim_object_list
        if memory:
            comp = [[float(x) for x in lay.get_compute_report_items()] for lay in layers]
            detail = [dict(zip(_DETAIL_KEYS, (float(x) for x in lay.get_detail_report_items()))) for lay in layers]
        else:  # the figures calc_report_data would give, from the array model alone
            comp, detail = [], []
            for lay in layers:
                cs, cycles = lay.compute_system, float(lay.memory_system.total_cycles)
                comp.append([float("nan"), cycles, 0.0, float("nan"), 100.0 * cs.get_avg_mapping_efficiency(),
                             100.0 * cs.get_avg_compute_utilization()])
                detail.append({"ifmap_sram_reads": float(cs.get_ifmap_requests()),
                               "filter_sram_reads": float(cs.get_filter_requests()),
                               "ofmap_sram_writes": float(cs.get_ofmap_requests())})

    total = sum(c[1] for c in comp)
    stall = sum(c[2] for c in comp)
    compute = total - stall
    macs = ox * oy * fh * fw * channels * k_col  # depthwise: k_col filters per channel; grouped: per group
    weights = [c[1] - c[2] for c in comp]
    wsum = sum(weights) or 1.0
    out: dict[str, Any] = {
        "compute_cycles": int(compute),
        "total_cycles": int(total),
        "stall_cycles": int(stall),
        "total_cycles_with_prefetch": int(sum(c[0] for c in comp)) if memory else None,
        "utilisation_pct": 100.0 * macs / (total * rows * cols),
        "mapping_efficiency_pct": sum(w * c[4] for w, c in zip(weights, comp)) / wsum,
        "compute_utilisation_pct": sum(w * c[5] for w, c in zip(weights, comp)) / wsum,
        "ofmap": (oy, ox),
        "macs": macs,
        "layers": len(layers),
    }
    for key in _COUNT_KEYS:
        out[key] = int(sum(d[key] for d in detail)) if key in detail[0] else None
    return out


@contextlib.contextmanager
def _array_model_only(active: bool):
    """While active, SCALE-Sim's memory system records the array's cycle count (one demand-matrix
    row per cycle, no stalls) instead of simulating the requests, and no report files are written."""
    if not active:
        yield
        return
    from scalesim.memory.double_buffered_scratchpad_mem import double_buffered_scratchpad
    from scalesim.simulator import simulator

    def record(self, ifmap_demand_mat, filter_demand_mat, ofmap_demand_mat):
        self.total_cycles = int(ofmap_demand_mat.shape[0]) - 1  # the last row's cycle, as its simulation reports
        self.stall_cycles = 0

    saved = double_buffered_scratchpad.service_memory_requests, simulator.generate_reports
    double_buffered_scratchpad.service_memory_requests = record
    simulator.generate_reports = lambda self: None
    try:
        yield
    finally:
        double_buffered_scratchpad.service_memory_requests, simulator.generate_reports = saved


# ----------------------------------------------------------------------------------------------
# ZigZag
# ----------------------------------------------------------------------------------------------

def _per_operand(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        missing = [op for op in _OPERANDS if op not in value]
        if missing:
            raise AutonbaError(f"{what}: missing operand(s) {missing} (give W, I and O)")
        return {op: value[op] for op in _OPERANDS}
    return {op: value for op in _OPERANDS}


def _fill(sizes: Mapping[str, int], order: list[str], budget: int) -> list[tuple[str, int]]:
    """Unroll layer dims in ``order`` over ``budget`` PEs: each takes min(size, what is left)."""
    out = []
    for dim in order:
        if budget <= 1:
            break
        u = min(sizes[dim], budget)
        if u > 1:
            out.append((dim, u))
            budget //= u
    return out or [(order[0], 1)]


def _zigzag_mapping(dataflow: str, depthwise: bool, sizes: Mapping[str, int], rows: int, cols: int
                    ) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[str]]:
    """Spatial unrolling of rows (D1) and cols (D2), and the temporal loop order (innermost first)."""
    out_ch = "G" if depthwise else "K"               # what a column computes (depthwise: a channel)
    window = ["FX", "FY"] if depthwise else ["C", "FX", "FY"]
    pixels = ["OX", "OY"]
    if dataflow == "os":    # rows: output pixels, cols: filters; the reduction runs in time, innermost
        d1, d2 = _fill(sizes, pixels, rows), _fill(sizes, [out_ch], cols)
        order = ["FX", "FY"] + ([] if depthwise else ["C"]) + pixels + [out_ch]
    elif dataflow == "ws":  # rows: reduction window, cols: filters; output pixels innermost
        d1, d2 = _fill(sizes, window, rows), _fill(sizes, [out_ch], cols)
        order = pixels + ["FX", "FY"] + ([] if depthwise else ["C"]) + [out_ch]
    else:                   # is: rows: reduction window (depthwise: and channels), cols: output pixels
        d1 = _fill(sizes, window + (["G"] if depthwise else []), rows)
        d2 = _fill(sizes, pixels, cols)
        order = ([] if depthwise else ["K"]) + ["FX", "FY", "G" if depthwise else "C"] + pixels
    return d1, d2, order


def _temporal_loops(sizes: Mapping[str, int], spatial: list[tuple[str, int]], order: list[str]) -> list[list]:
    left = dict(sizes)
    for dim, u in spatial:
        left[dim] = math.ceil(left[dim] / u)
    loops = [[dim, left[dim]] for dim in order if left.get(dim, 1) > 1]
    missing = [d for d, v in left.items() if v > 1 and d not in order]
    if missing:  # a dim left out of the order (should not happen) goes outermost
        loops += [[d, left[d]] for d in missing]
    return loops


def _mem(size: int, operands: list[str], r_pj_bit: float, w_pj_bit: float, bw: int, bw_min: int,
         served: list[str], shared_port: bool = False) -> dict[str, Any]:
    """One ZigZag memory. ZigZag charges r_cost/w_cost per access of ``bandwidth_max`` bits, so a
    cost per bit becomes a cost per access of ``bw`` bits; ``bw_min`` is the access granularity
    (energy is then per bit, rounded up to ``bw_min``). ZigZag time-multiplexes a port between the
    transfers allocated to it (two operands needing a port every cycle stall each other even when
    their bits fit its width), so unless ``shared_port`` (DRAM: one read/write interface) every
    operand and direction gets a port of its own: ``bw`` bits per cycle each."""
    if shared_port:
        allocs = [f"{op}, {d}" for op in operands for d in (("fh", "tl", "fl", "th") if op == "O" else ("fh", "tl"))]
        ports = [{"name": "rw_port_1", "type": "read_write", "bandwidth_min": bw_min, "bandwidth_max": bw,
                  "allocation": allocs}]
    else:
        ports, n_r, n_w = [], 0, 0
        for op in operands:
            for d in (("tl", "th") if op == "O" else ("tl",)):
                n_r += 1
                ports.append({"name": f"r_port_{n_r}", "type": "read", "bandwidth_min": bw_min,
                              "bandwidth_max": bw, "allocation": [f"{op}, {d}"]})
            for d in (("fh", "fl") if op == "O" else ("fh",)):
                n_w += 1
                ports.append({"name": f"w_port_{n_w}", "type": "write", "bandwidth_min": bw_min,
                              "bandwidth_max": bw, "allocation": [f"{op}, {d}"]})
    return {"size": int(size), "r_cost": float(r_pj_bit * bw), "w_cost": float(w_pj_bit * bw), "area": 0.0,
            "latency": 1, "operands": operands, "ports": ports, "served_dimensions": served}


def zigzag_hardware(rows: int, cols: int, *, mac_pj: float, precision: Mapping[str, int],
                    rf_bits: Mapping[str, int], rf_read_pj_per_bit: Mapping[str, float],
                    rf_write_pj_per_bit: Mapping[str, float],
                    gb_bits: int | Mapping[str, int], gb_read_pj_per_bit: float | Mapping[str, float],
                    gb_write_pj_per_bit: float | Mapping[str, float], gb_bandwidth: int,
                    dram_read_pj_per_bit: float, dram_write_pj_per_bit: float, dram_bandwidth: int,
                    rf_port_words: int = 1, systolic: bool = True) -> dict[str, Any]:
    """The ZigZag accelerator description (a dict for its YAML) of a rows x cols array.

    Memory levels, lowest first: one register per PE and operand (``rf_W``, ``rf_I``, ``rf_O``;
    ``served_dimensions: []``), a global buffer serving the whole array (``gb``, shared by W, I and O
    when ``gb_bits`` is one number, else ``gb_W``, ``gb_I``, ``gb_O``), and ``dram``. ZigZag's
    operands: I1 = activations (I), I2 = weights (W), O = outputs/partial sums.
    """
    mem_op = {"W": "I2", "I": "I1", "O": "O"}
    prec = dict(precision)
    gran = math.gcd(prec["W"], prec["I"], prec["O"], prec["O_final"])
    memories: dict[str, Any] = {}
    for op in _OPERANDS:
        word = prec["O"] if op == "O" else prec[op]
        memories[f"rf_{op}"] = _mem(rf_bits[op], [mem_op[op]], rf_read_pj_per_bit[op], rf_write_pj_per_bit[op],
                                    bw=word * rf_port_words, bw_min=gran, served=[])
    if isinstance(gb_bits, Mapping):
        gb_r = _per_operand(gb_read_pj_per_bit, "gb_read_pj_per_bit")
        gb_w = _per_operand(gb_write_pj_per_bit, "gb_write_pj_per_bit")
        for op in _OPERANDS:
            memories[f"gb_{op}"] = _mem(gb_bits[op], [mem_op[op]], gb_r[op], gb_w[op], bw=gb_bandwidth,
                                        bw_min=gran, served=["D1", "D2"])
    else:
        if isinstance(gb_read_pj_per_bit, Mapping) or isinstance(gb_write_pj_per_bit, Mapping):
            raise AutonbaError("a shared global buffer takes one read and one write cost per bit")
        memories["gb"] = _mem(gb_bits, ["I1", "I2", "O"], gb_read_pj_per_bit, gb_write_pj_per_bit,
                              bw=gb_bandwidth, bw_min=gran, served=["D1", "D2"])
    memories["dram"] = _mem(10 ** 12, ["I1", "I2", "O"], dram_read_pj_per_bit, dram_write_pj_per_bit,
                            bw=dram_bandwidth, bw_min=gran, served=["D1", "D2"], shared_port=True)
    return {
        "name": f"autonba_systolic_{rows}x{cols}",
        "memories": memories,
        "operational_array": {"unit_energy": float(mac_pj), "unit_area": 1.0, "dimensions": ["D1", "D2"],
                              "sizes": [int(rows), int(cols)],
                              "systolic_dimensions": ["D1", "D2"] if systolic else []},
    }


def zigzag_layer(ifmap_h: int, ifmap_w: int, fh: int, fw: int, channels: int, filters: int, stride: int,
                 rows: int, cols: int, dataflow: Dataflow, depthwise: bool = False, *,
                 weight_bits: int = 8, act_bits: int = 8, psum_bits: int = 24, mac_pj: float = 0.2,
                 rf_bits: int | Mapping[str, int] | None = None,
                 rf_read_pj_per_bit: float | Mapping[str, float] = 0.01,
                 rf_write_pj_per_bit: float | Mapping[str, float] = 0.01, rf_port_words: int = 1,
                 gb_bits: int | Mapping[str, int] = 8 * 2 ** 20,
                 gb_read_pj_per_bit: float | Mapping[str, float] = 0.15,
                 gb_write_pj_per_bit: float | Mapping[str, float] = 0.15,
                 gb_bandwidth: int | None = None,
                 dram_pj_per_bit: float | tuple[float, float] = 10.0, dram_bandwidth: int = 512,
                 temporal_ordering: Literal["pinned", "search"] | list[tuple[str, int]] = "pinned",
                 systolic: bool = True, opt: Literal["latency", "energy", "EDP"] = "latency",
                 padding: tuple[int, int] = (0, 0),
                 ) -> dict[str, Any]:
    """Energy (pJ) and latency (cycles) of one convolution on a ZigZag model of a systolic array.

    The layer takes the same arguments as :func:`scalesim_layer` (padded input; output size
    ``ceil((H - F) / S) + 1``; for ``depthwise`` one group per channel, ``filters == channels``).
    Hardware (see :func:`zigzag_hardware`): ``mac_pj`` per MAC at the layer's precision; a
    register per PE and operand of ``rf_bits`` bits (default two words: the PE's stationary word
    and the next one, which ZigZag needs to see a register as double-buffered; with one word it
    charges a stall for every refill) at ``rf_*_pj_per_bit``, ports ``rf_port_words`` words wide; a
    global buffer of ``gb_bits`` (one number: shared by W, I and O; a mapping W/I/O: one buffer
    each) at ``gb_*_pj_per_bit`` with ports of ``gb_bandwidth`` bits per cycle, one port per
    operand and direction (default: ``max(rows, cols)`` words of the widest precision, a full edge
    of the array per cycle); DRAM at ``dram_pj_per_bit`` (one number or (read, write)) behind one
    read/write port of ``dram_bandwidth`` bits per cycle. Precisions: weights ``weight_bits``,
    activations ``act_bits`` (inputs and final outputs), partial sums ``psum_bits``.

    Spatial unrolling (D1 = rows, D2 = cols), pinned per dataflow (each dim takes as much of the
    remaining PEs as its size allows, in the order listed):

    - ``os``: rows over OX then OY, cols over K; temporal order (innermost first) FX, FY, C, then
      OX, OY, K.
    - ``ws``: rows over C then FX, FY, cols over K; temporal OX, OY innermost, then FX, FY, C, K.
    - ``is``: rows over C then FX, FY, cols over OX then OY; temporal K innermost, then FX, FY, C,
      OX, OY.
    - depthwise: channels (G) take the place of K (os, ws: cols over G) or join the window on the
      rows (is: rows over FX, FY, G); the window of a single channel is FX, FY. Each column then
      needs inputs of its own channel, so the input port of the global buffer, not the array,
      bounds os and ws latency unless ``gb_bandwidth`` is raised.

    ``temporal_ordering``: "pinned" (the order above), "search" (ZigZag's LOMA search, much
    slower) or an explicit list of (dim, size), innermost first, sizes left after the spatial
    unrolling. ZigZag ignores an order that does not multiply out to the temporal loop sizes and
    then searches; ``pinned`` in the result says whether the order given was the one evaluated.

    ``padding`` (rows, cols): how many of the ``ifmap_h`` / ``ifmap_w`` input rows and columns are
    zero padding (split between the two sides). ZigZag then sizes the whole input tensor without
    them (what its top memories hold and fetch), while the loops still run over the padded
    window; (0, 0) fetches the padded input like SCALE-Sim.

    Returns ``energy_pj``, ``mac_energy_pj``, ``mem_energy_pj``, ``energy_per_level`` ({operand:
    {memory: pJ}}, operands W, I, O), ``energy_per_memory`` ({memory: pJ}), ``accesses``
    ({operand: {memory: {direction: count}}}, counts of accesses of the port width),
    ``latency_cycles`` (ZigZag's latency_total2: compute, stalls, data on- and off-loading and the
    systolic drain), ``latency_compute_cycles`` (latency_total0), ``stall_cycles``,
    ``onloading_cycles``, ``offloading_cycles``, ``drain_cycles``, ``ideal_cycles`` (MACs / PEs),
    ``ideal_temporal_cycles`` (given the spatial unrolling), ``mac_utilisation`` (ideal /
    latency), ``spatial_mapping``, ``temporal_mapping`` (text), ``pinned`` and ``macs``.
    """
    _check_dataflow(dataflow)
    if rows < 1 or cols < 1 or stride < 1:
        raise AutonbaError("rows, cols and stride must be positive")
    oy, ox = output_size(ifmap_h, fh, stride), output_size(ifmap_w, fw, stride)
    if min(padding) < 0 or padding[0] >= ifmap_h or padding[1] >= ifmap_w:
        raise AutonbaError(f"padding {padding} must be non-negative and smaller than the input {ifmap_h}x{ifmap_w}")
    if depthwise and filters != channels:
        raise AutonbaError("zigzag_layer models a depthwise layer with one filter per channel (filters == channels)")
    api = _require("zigzag.api", "ZigZag")
    import yaml

    prec = {"W": weight_bits, "I": act_bits, "O": psum_bits, "O_final": act_bits}
    words = {"W": weight_bits, "I": act_bits, "O": psum_bits}
    rf = _per_operand(rf_bits if rf_bits is not None else {op: 2 * w for op, w in words.items()}, "rf_bits")
    dram_r, dram_w = (dram_pj_per_bit, dram_pj_per_bit) if not isinstance(dram_pj_per_bit, tuple) else dram_pj_per_bit
    if gb_bandwidth is None:
        gb_bandwidth = max(rows, cols) * max(weight_bits, act_bits, psum_bits)
    hw = zigzag_hardware(rows, cols, mac_pj=mac_pj, precision=prec, rf_bits=rf,
                         rf_read_pj_per_bit=_per_operand(rf_read_pj_per_bit, "rf_read_pj_per_bit"),
                         rf_write_pj_per_bit=_per_operand(rf_write_pj_per_bit, "rf_write_pj_per_bit"),
                         gb_bits=gb_bits, gb_read_pj_per_bit=gb_read_pj_per_bit,
                         gb_write_pj_per_bit=gb_write_pj_per_bit, gb_bandwidth=int(gb_bandwidth),
                         dram_read_pj_per_bit=dram_r, dram_write_pj_per_bit=dram_w,
                         dram_bandwidth=int(dram_bandwidth), rf_port_words=rf_port_words, systolic=systolic)

    if depthwise:
        sizes = {"B": 1, "G": channels, "OY": oy, "OX": ox, "FY": fh, "FX": fw}
        equation = "O[b][g][oy][ox]+=W[g][fy][fx]*I[b][g][iy][ix]"
    else:
        sizes = {"B": 1, "K": filters, "C": channels, "OY": oy, "OX": ox, "FY": fh, "FX": fw}
        equation = "O[b][k][oy][ox]+=W[k][c][fy][fx]*I[b][c][iy][ix]"
    layer = {
        "id": 0, "name": "layer", "operator_type": "Conv", "equation": equation,
        "dimension_relations": [f"ix={stride}*ox+1*fx", f"iy={stride}*oy+1*fy"],
        "loop_dims": list(sizes), "loop_sizes": list(sizes.values()),
        "operand_precision": dict(prec), "operand_source": {"I": 0, "W": 0},
    }
    if any(padding):
        py, px = (int(p) for p in padding)
        layer |= {"pr_loop_dims": ["IX", "IY"], "padding": [[px // 2, px - px // 2], [py // 2, py - py // 2]]}
    d1, d2, loop_order = _zigzag_mapping(dataflow, depthwise, sizes, rows, cols)
    entry: dict[str, Any] = {
        "name": "layer",
        "spatial_mapping": {"D1": [f"{d}, {u}" for d, u in d1], "D2": [f"{d}, {u}" for d, u in d2]},
        "memory_operand_links": {"O": "O", "W": "I2", "I": "I1"},
    }
    if temporal_ordering == "pinned":
        order = _temporal_loops(sizes, d1 + d2, loop_order)
    elif temporal_ordering == "search":
        order = []
    else:
        order = [[str(d), int(s)] for d, s in temporal_ordering]
    if order:
        entry["temporal_ordering"] = order
    default = {k: v for k, v in entry.items() if k != "temporal_ordering"} | {"name": "default"}
    mapping = [entry, default]

    root = logging.getLogger()
    quiet_root = not root.handlers  # ZigZag calls logging.basicConfig(INFO): give it a handler to find
    zz_log = logging.getLogger("zigzag")
    old_level = zz_log.level
    with tempfile.TemporaryDirectory(prefix="autonba-zigzag-") as tmp:
        hw_path, map_path = os.path.join(tmp, "accelerator.yaml"), os.path.join(tmp, "mapping.yaml")
        with open(hw_path, "w") as f:
            yaml.safe_dump(hw, f, sort_keys=False)
        with open(map_path, "w") as f:
            yaml.safe_dump(mapping, f, sort_keys=False)
        null = logging.NullHandler()
        if quiet_root:
            root.addHandler(null)
        zz_log.setLevel(logging.ERROR)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                _, _, cmes = api.get_hardware_performance_zigzag(
                    workload=[layer], accelerator=hw_path, mapping=map_path, opt=opt, lpf_limit=6,
                    dump_folder=os.path.join(tmp, "out"), loma_show_progress_bar=False)
        except Exception as e:  # ZigZag reports bad descriptions with assertions and ValueErrors
            raise AutonbaError(f"ZigZag failed on {dataflow} {rows}x{cols}: {type(e).__name__}: {e}") from e
        finally:
            zz_log.setLevel(old_level)
            if quiet_root:
                root.removeHandler(null)
    cme = _first_cme(cmes)
    return _zigzag_result(cme, order)


def _first_cme(cmes: Any):
    """The layer's own cost-model evaluation in ZigZag's result, which nests as
    [(summed CME, [(layer CME, extra info), ...])]: the first object carrying a temporal mapping."""
    stack = [cmes]
    while stack:
        node = stack.pop(0)
        if hasattr(node, "temporal_mapping") and hasattr(node, "energy_total"):
            return node
        if isinstance(node, (list, tuple)):
            stack[:0] = list(node)
    raise AutonbaError("ZigZag returned no cost-model evaluation")


def _zigzag_result(cme: Any, order: list) -> dict[str, Any]:
    def level_names(op):
        mem_op = cme.memory_operand_links.layer_to_mem_op(op)
        return [lv.name for lv in cme.accelerator.memory_hierarchy.get_memory_levels(mem_op=mem_op)]

    per_level: dict[str, dict[str, float]] = {}
    per_memory: dict[str, float] = {}
    accesses: dict[str, dict[str, dict[str, float]]] = {}
    for op, energies in cme.mem_energy_breakdown.items():
        names = level_names(op)
        per_level[str(op)] = {n: float(e) for n, e in zip(names, energies)}
        for n, e in zip(names, energies):
            per_memory[n] = per_memory.get(n, 0.0) + float(e)
        accesses[str(op)] = {
            n: {str(d.name if hasattr(d, "name") else d).lower(): float(v) for d, v in _items(acc)}
            for n, acc in zip(names, cme.memory_word_access[op])}
    tm_loops = _temporal_loop_list(cme)
    pinned = bool(order) and tm_loops == [(str(d), int(s)) for d, s in order]
    return {
        "energy_pj": float(cme.energy_total),
        "mac_energy_pj": float(cme.mac_energy),
        "mem_energy_pj": float(cme.mem_energy),
        "energy_per_level": per_level,
        "energy_per_memory": per_memory,
        "accesses": accesses,
        "latency_cycles": float(cme.latency_total2),
        "latency_compute_cycles": float(cme.latency_total0),
        "stall_cycles": float(cme.stall_slack_comb),
        "onloading_cycles": float(cme.data_onloading_cycle),
        "offloading_cycles": float(cme.data_offloading_cycle),
        "drain_cycles": float(cme.systolic_drain_cycle),
        "ideal_cycles": float(cme.ideal_cycle),
        "ideal_temporal_cycles": float(cme.ideal_temporal_cycle),
        "mac_utilisation": float(cme.mac_utilization2),
        "spatial_mapping": str(cme.layer.spatial_mapping),
        "temporal_mapping": str(cme.temporal_mapping),
        "temporal_loops": tm_loops,
        "pinned": pinned,
        "macs": int(cme.layer.total_mac_count),
    }


def _items(access: Any):
    data = getattr(access, "data", None)
    if isinstance(data, Mapping):
        return data.items()
    if isinstance(access, Mapping):
        return access.items()
    return []


def _temporal_loop_list(cme: Any) -> list[tuple[str, int]]:
    """Temporal loops of the evaluated mapping, innermost first (from the outputs' view)."""
    try:
        tm = cme.temporal_mapping
        levels = next(iter(tm.mapping_dic_origin.values()))
        return [(str(dim), int(size)) for level in levels for dim, size in level]
    except (AttributeError, StopIteration, TypeError, ValueError):  # ZigZag's internals changed
        return []
