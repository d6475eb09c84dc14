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


def status_mib(pid, key):
    """A size from /proc/PID/status (`VmRSS`, `RssAnon`, `RssFile`, …), in MiB."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid):
    return status_mib(pid, "VmRSS")


def machine():
    model = next(l for l in open("/proc/cpuinfo") if l.startswith("model name")).split(":")[1].strip()
    return f"{os.cpu_count()} × {model}"


def kill_shims(state):
    """SIGKILL every gantry-shim left holding an attempt under `state`, and its job's process
    group: a shim's stdin is its attempt's lock file, and it leads the session its job runs in.
    (Its argv names no directory: shims are forked from the daemon's spawner.)"""
    state = os.path.realpath(state)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if open(f"/proc/{pid}/comm").read().strip() != "gantry-shim":
                continue
            if not os.readlink(f"/proc/{pid}/fd/0").startswith(state + "/"):
                continue
            sid = os.getsid(int(pid))
            for other in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if os.getsid(int(other)) == sid and int(other) != int(pid):
                        os.kill(int(other), 9)
                except (ProcessLookupError, PermissionError):
                    pass
            os.kill(int(pid), 9)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            pass


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != "kill-shims":
        sys.exit("usage: common.py kill-shims STATE_DIR")
    kill_shims(sys.argv[2])
