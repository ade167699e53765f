import asyncio
import os
import signal
from pathlib import Path

import pytest

from openmemory_core.bus import Bus
from openmemory_core.embedded import embedded_nats
from openmemory_core.errors import ConfigurationError
from openmemory_core.runtime import data_dir_lock


async def test_a_killed_nats_server_is_restarted_with_its_data(tmp_path: Path) -> None:
    proc, url = embedded_nats(tmp_path)
    await proc.start()
    try:
        bus = await Bus.connect(url, "t", partitions=1)
        kv = await bus.keys_bucket()
        await kv.put("k", b"kept")
        await bus.close()
        assert proc._proc is not None
        os.kill(proc._proc.pid, signal.SIGKILL)
        for _ in range(100):
            if proc.restarts == 1 and proc.running:
                break
            await asyncio.sleep(0.1)
        assert proc.restarts == 1
        bus = await Bus.connect(url, "t", partitions=1)
        assert (await (await bus.keys_bucket()).get("k")).value == b"kept"
        await bus.close()
    finally:
        await proc.stop()
    assert not proc.running


def test_one_process_per_data_dir(tmp_path: Path) -> None:
    with (
        data_dir_lock(tmp_path),
        pytest.raises(ConfigurationError, match="another OpenMemory"),
        data_dir_lock(tmp_path),
    ):
        pass
    with data_dir_lock(tmp_path):  # released
        pass
