"""What the bench scripts share: a free port, a process's CPU time and memory from /proc."""
import os, socket

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pids):
    """User and system CPU time of the processes `pids` (gone ones count nothing), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine():
    model = next(l for l in open("/proc/cpuinfo") if l.startswith("model name")).split(":")[1].strip()
    return f"{os.cpu_count()} × {model}"
