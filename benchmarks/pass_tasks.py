"""The driver's CPU in one Ray Data pass (read, map, Parquet write, as the
job's write pass runs) by its read tasks and by the blocks they yield: tasks
of one block each, and fewer tasks yielding several blocks each. Small
blocks, so that the driver's share shows; the driver's CPU is its process's
(time.process_time), threads included. With --sleep-s each read task sleeps
that long first: the driver's CPU for each second a pass runs (Ray Data's
executor loop polls while tasks run), apart from its tasks.

    .venv/bin/python benchmarks/pass_tasks.py --tasks 2000,250 --blocks-per-task 1,8
    .venv/bin/python benchmarks/pass_tasks.py --tasks 40 --blocks-per-task 1 --sleep-s 0,1
"""

from __future__ import annotations

import argparse
import tempfile
import time

import pyarrow as pa
import ray
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask


class Blocks(Datasource):
    """`tasks` read tasks, each yielding `blocks` tables of `rows` rows."""

    def __init__(self, tasks: int, blocks: int, rows: int, sleep_s: float = 0.0):
        self.tasks, self.blocks, self.rows, self.sleep_s = tasks, blocks, rows, sleep_s

    def estimate_inmemory_data_size(self) -> None:
        return None

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        def read_fn(task: int):
            def read_blocks():
                time.sleep(self.sleep_s)
                for _ in range(self.blocks):
                    yield pa.table({"x": range(self.rows), "task": [task] * self.rows})

            return read_blocks

        meta = BlockMetadata(self.blocks * self.rows, None, None, None)
        return [ReadTask(read_fn(t), meta) for t in range(self.tasks)]


def one_pass(tasks: int, blocks: int, rows: int, sleep_s: float = 0.0) -> tuple[float, float]:
    """(driver CPU s, wall s) of reading, mapping and writing the blocks."""
    source = Blocks(tasks, blocks, rows, sleep_s)
    ds = ray.data.read_datasource(source, override_num_blocks=tasks)
    ds = ds.map_batches(lambda t: t, batch_format="pyarrow", batch_size=None)
    cpu, wall = time.process_time(), time.time()
    with tempfile.TemporaryDirectory() as out:
        ds.write_parquet(out, min_rows_per_file=100_000, max_rows_per_file=100_000)
    return time.process_time() - cpu, time.time() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="2000,250")
    parser.add_argument("--blocks-per-task", default="1,8")
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--sleep-s", default="0", help="each read task sleeps this long first")
    args = parser.parse_args()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    one_pass(50, 1, args.rows)  # start the workers
    print(f"{'tasks':>6} {'blocks a task':>13} {'sleep s':>7} {'driver cpu s':>12} "
          f"{'ms a task':>9} {'ms a block':>10} {'wall s':>7}")  # fmt: skip
    for tasks in [int(t) for t in args.tasks.split(",")]:
        for blocks in [int(b) for b in args.blocks_per_task.split(",")]:
            for sleep_s in [float(s) for s in args.sleep_s.split(",")]:
                cpu, wall = one_pass(tasks, blocks, args.rows, sleep_s)
                print(f"{tasks:>6} {blocks:>13} {sleep_s:>7} {cpu:>12.2f} "
                      f"{1000 * cpu / tasks:>9.2f} {1000 * cpu / (tasks * blocks):>10.2f} "
                      f"{wall:>7.1f}")  # fmt: skip
    ray.shutdown()


if __name__ == "__main__":
    main()
