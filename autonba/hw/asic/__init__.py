"""The ``asic-array`` template: a systolic array of precision-scalable PEs with a register file per PE,
a global buffer and DRAM, costed in latency, energy (EDP) and area; its design space and engines."""
