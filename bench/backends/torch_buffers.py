"""The buffers of a torch backend: one arena per rank (an anonymous mmap on the CPU, as in the
MPI backend; torch.zeros on a GPU), typed views of it, and the writes, reads and checks of the
values in them. A mixin of TorchBackend (bench/backends/torch_dist.py), which sets self.torch
and self.device."""
from __future__ import annotations

import mmap
from typing import Any

import numpy as np


class TorchBuffers:
    """alloc, view, write, read and count_wrong on torch tensors."""

    torch: Any  # the torch module, set by TorchBackend.__init__

    # --- buffers -----------------------------------------------------------------------------
    def alloc(self, nbytes):
        torch = self.torch
        if self.device.type == "cpu":
            arena = np.frombuffer(mmap.mmap(-1, max(nbytes, mmap.PAGESIZE)), dtype=np.uint8)
            arena.fill(0)  # every page written once, so none faults while timed
            return torch.from_numpy(arena)
        return torch.zeros(max(nbytes, 4096), dtype=torch.uint8, device=self.device)

    def view(self, arena, offset, count, dtype):
        tdtype = getattr(self.torch, dtype)
        itemsize = self.torch.tensor([], dtype=tdtype).element_size()
        return arena[offset:offset + count * itemsize].view(tdtype)

    def write(self, buf, values):
        """values: an array, or a bench.ops.data.Periodic, written a tile at a time (each distinct
        tile made once; on a GPU, copied there once), so nothing of the buffer's size is built
        on the host or copied to the device."""
        from bench.ops.data import fill, tiles

        host = self._numpy(buf)
        if host is not None:  # numpy on the same memory: several times faster than torch there
            fill(host, values)
            return
        torch = self.torch
        for start, stop, tile in tiles(values, lambda tile: torch.from_numpy(np.asarray(tile)).to(
                buf.dtype).to(buf.device), chunk=self.device_chunk):
            buf[start:stop].copy_(tile[:stop - start])

    def count_wrong(self, buf, expected) -> int:
        """Elements of buf that differ from `expected` (a bench.ops.data.Periodic or an array),
        counted where buf lives, tile by tile (one synchronisation, no copy of a GPU buffer to
        the host): in buf's own dtype, exact where it holds every expected value; where it
        cannot (a sum that wraps in int8, 257 in bfloat16), in float64, as the numbers they are
        (such an element can never match)."""
        from bench.ops.data import count_wrong, tiles

        torch = self.torch
        t = buf.detach()
        if len(t) != len(expected):
            raise ValueError(f"received {len(t)} elements, expected {len(expected)}")
        host = self._numpy(t)
        if host is not None:  # numpy's compare: about 10x torch's on the CPU
            return count_wrong(host, expected)

        def convert(tile):
            given = torch.from_numpy(np.asarray(tile))
            same = given.to(t.dtype)
            exact = torch.equal(same.double(), given.double())
            return (same if exact else given.double()).to(t.device)
        wrong = torch.zeros((), dtype=torch.int64, device=t.device)
        for start, stop, tile in tiles(expected, convert, chunk=self.device_chunk):
            wrong += torch.count_nonzero(t[start:stop] != tile[:stop - start])
        return int(wrong)

    device_chunk = 1 << 22  # elements per tile on a GPU: a 1 GiB buffer is a few hundred kernels

    def _numpy(self, t):
        """numpy on the memory of a CPU tensor; None on a GPU, or for bfloat16 (numpy has none)."""
        if t.device.type != "cpu" or t.dtype == self.torch.bfloat16:
            return None
        return t.detach().numpy()

    def read(self, buf):
        t = buf.detach()
        if t.dtype == self.torch.bfloat16:  # numpy has no bfloat16; small integers stay exact
            t = t.float()
        return t.cpu().numpy()
