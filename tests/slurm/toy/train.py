"""Stand-in for a training command that checkpoints and exits 75 on SIGUSR1.

First attempt: no checkpoint yet, so it waits (like a long training loop) for
SIGUSR1; the handler writes the checkpoint and the process exits 75.  The
retried attempt finds the checkpoint, "resumes", and writes the output naming
the attempt that made the checkpoint.
"""

import argparse
import os
import signal
import sys
import time

EXIT_PREEMPTED = 75

parser = argparse.ArgumentParser()
parser.add_argument("--checkpoint", required=True)
parser.add_argument("--out", required=True)
parser.add_argument("--max-wait", type=float, default=240.0)
parser.add_argument("--save-seconds", type=float, default=0.0, help="time a checkpoint takes")
args = parser.parse_args()

job = os.environ.get("SLURM_JOB_ID", "")
print(f"pid={os.getpid()} ppid={os.getppid()} job={job}", flush=True)

if os.path.exists(args.checkpoint):
    with open(args.checkpoint) as f:
        saved = f.read().strip()
    with open(args.out, "w") as f:
        f.write(f"resumed from: {saved}\nfinished in job {job}\n")
    print("resumed from checkpoint", flush=True)
    sys.exit(0)

received = []
signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
start = time.time()
while not received and time.time() - start < args.max_wait:
    time.sleep(0.1)
if not received:
    print("no SIGUSR1 received", flush=True)
    sys.exit(1)
print("got SIGUSR1: saving checkpoint", flush=True)
time.sleep(args.save_seconds)
os.makedirs(os.path.dirname(args.checkpoint) or ".", exist_ok=True)
tmp = args.checkpoint + ".tmp"
with open(tmp, "w") as f:
    f.write(f"SIGUSR1 in job {job} after {time.time() - start:.1f}s\n")
os.replace(tmp, args.checkpoint)
print("checkpoint written, exiting 75", flush=True)
sys.exit(EXIT_PREEMPTED)
