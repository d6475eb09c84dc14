//! How the shim starts a job's process: forked, in a process group of its own, waiting at a gate
//! until the shim has recorded that group, then executing its program as the job's user.
//!
//! The gate is a pipe the child reads before it executes anything: if the shim dies before it
//! recorded the job, the read sees end-of-file and nothing runs (exit 125), so a job never runs
//! unrecorded. A failure between the gate and the program (the user's ids, the working
//! directory, the program itself) comes back to the shim as an errno on a close-on-exec pipe,
//! whose end-of-file means the program is running.
//!
//! The program is `bash -c` with the job's lines, or, for a single line of plain words whose
//! first word is a program in `PATH`, that program itself: what `bash -c` would end up executing
//! anyway, without the shell's start (about half of what a trivial job costs).

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What the job's process executes.
#[derive(Debug, PartialEq)]
pub struct Program {
    pub path: PathBuf,
    pub argv: Vec<String>,
}

/// Bash's builtins and keywords: a line starting with one needs the shell. `true`, `false` and
/// `echo` are left to their programs when no argument is an option, where they behave alike.
const SHELL_WORDS: &[&str] = &[
    "alias", "bg", "bind", "break", "builtin", "caller", "cd", "command", "compgen", "complete", "compopt", "continue", "declare", "dirs", "disown", "enable",
    "eval", "exec", "exit", "export", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let", "local", "logout", "mapfile", "popd", "printf",
    "pushd", "pwd", "read", "readarray", "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test", "times", "trap", "type", "typeset",
    "ulimit", "umask", "unalias", "unset", "wait", "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do", "done",
    "in", "function", "time", "coproc",
];

/// The job's program: `shell -c SCRIPT`, or the line's own program (see the module overview).
pub fn program(commands: &[String], script: &str, shell: &Path, path_var: &str) -> Program {
    direct(commands, path_var).unwrap_or_else(|| Program { path: shell.to_path_buf(), argv: vec![shell.display().to_string(), "-c".into(), script.to_string()] })
}

fn direct(commands: &[String], path_var: &str) -> Option<Program> {
    let [line] = commands else { return None };
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./=:,+@%- \t".contains(c);
    if !line.chars().all(plain) {
        return None;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let (first, args) = words.split_first()?;
    let builtin_alike = matches!(*first, "true" | "false" | "echo");
    if builtin_alike && args.iter().any(|a| a.starts_with('-')) {
        return None;
    }
    if first.contains('=') || SHELL_WORDS.contains(first) {
        return None;
    }
    let path = if first.contains('/') {
        PathBuf::from(first)
    } else {
        path_var.split(':').filter(|d| d.starts_with('/')).map(|d| Path::new(d).join(first)).find(|p| is_executable(p))?
    };
    Some(Program { path, argv: words.iter().map(|w| w.to_string()).collect() })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Who the job runs as, when not the shim's own user.
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Everything the child needs, made before the fork (the child may only make system calls).
pub struct Launch<'a> {
    pub program: &'a Program,
    /// `KEY=VALUE`, the whole environment.
    pub env: Vec<String>,
    pub cwd: Option<&'a Path>,
    pub identity: Option<Identity>,
    pub umask: u32,
    /// Where its stdout and stderr go.
    pub output: &'a OwnedFd,
}

/// A started job waiting at its gate.
pub struct Gated {
    pub pid: i32,
    go: OwnedFd,
    failed: OwnedFd,
}

fn c_string(text: &str, what: &str) -> std::io::Result<CString> {
    CString::new(text).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("the job's {what} contains a NUL byte")))
}

pub(super) fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors, which we take ownership of.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks the job's process. Only for a process with one thread (the shim):
/// the child runs nothing but system calls on what was prepared here.
pub fn start(launch: &Launch<'_>) -> std::io::Result<Gated> {
    let path = c_string(&launch.program.path.display().to_string(), "program")?;
    let argv = launch.program.argv.iter().map(|a| c_string(a, "command")).collect::<std::io::Result<Vec<_>>>()?;
    let env = launch.env.iter().map(|e| c_string(e, "environment")).collect::<std::io::Result<Vec<_>>>()?;
    let cwd = launch.cwd.map(|c| CString::new(c.as_os_str().as_encoded_bytes()).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "the working directory contains a NUL byte"))).transpose()?;
    let argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let null = std::fs::File::open("/dev/null")?;
    let (go_r, go_w) = pipe()?;
    let (failed_r, failed_w) = pipe()?;
    // SAFETY: the child only makes async-signal-safe system calls on memory prepared above, then
    // executes or exits; the caller has no other thread that could hold a lock.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: as above; every path ends in execve or _exit.
        unsafe { child(launch, &path, &argv_ptrs, &env_ptrs, cwd.as_deref(), null.as_raw_fd(), go_r.as_raw_fd(), failed_w.as_raw_fd()) }
    }
    // Also here, so that the group exists whichever of the two runs first.
    // SAFETY: setpgid on our own child.
    unsafe { libc::setpgid(pid, pid) };
    Ok(Gated { pid, go: go_w, failed: failed_r })
}

/// The child's side of [`start`]: never returns.
#[allow(clippy::too_many_arguments)]
unsafe fn child(launch: &Launch<'_>, path: &CStr, argv: &[*const libc::c_char], env: &[*const libc::c_char], cwd: Option<&CStr>, null: i32, go: i32, failed: i32) -> ! {
    // SAFETY: the whole function runs in the forked child, on memory prepared before the fork.
    unsafe {
        let fail = || -> ! {
            let errno = *libc::__errno_location();
            libc::write(failed, (&raw const errno).cast(), std::mem::size_of::<i32>());
            libc::_exit(127)
        };
        libc::setpgid(0, 0);
        let mut byte = [0u8; 3];
        loop {
            let n = libc::read(go, byte.as_mut_ptr().cast(), byte.len());
            if n > 0 {
                break;
            }
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            // The shim is gone before it recorded the job: nothing runs.
            libc::_exit(125);
        }
        let out = launch.output.as_raw_fd();
        if libc::dup2(null, 0) < 0 || libc::dup2(out, 1) < 0 || libc::dup2(out, 2) < 0 {
            fail();
        }
        if let Some(identity) = &launch.identity
            && (libc::setgroups(identity.groups.len(), identity.groups.as_ptr()) != 0 || libc::setgid(identity.gid) != 0 || libc::setuid(identity.uid) != 0)
        {
            fail();
        }
        if let Some(cwd) = cwd
            && libc::chdir(cwd.as_ptr()) != 0
        {
            fail();
        }
        libc::umask(launch.umask as libc::mode_t);
        // What the job starts with, as `std::process::Command` gives it: no signal blocked, and
        // SIGPIPE back to its default (Rust's runtime ignores it, and that would be inherited).
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::execve(path.as_ptr(), argv.as_ptr(), env.as_ptr());
        fail()
    }
}

impl Gated {
    /// Opens the gate, and tells whether the program then started: `Err` with the reason if
    /// it did not (the child has exited with 127 and is reaped here).
    pub fn open(self) -> Result<i32, std::io::Error> {
        // SAFETY: writing a short static line to a pipe we own.
        unsafe { libc::write(self.go.as_raw_fd(), b"go\n".as_ptr().cast(), 3) };
        drop(self.go);
        let mut errno = [0u8; 4];
        let mut file = std::fs::File::from(self.failed);
        let got = std::io::Read::read(&mut file, &mut errno).unwrap_or(0);
        if got < errno.len() {
            return Ok(self.pid);
        }
        let mut status = 0;
        // SAFETY: reaping our own child, which exits right after reporting.
        unsafe { libc::waitpid(self.pid, &mut status, 0) };
        Err(std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(line: &str) -> Option<Vec<String>> {
        direct(&[line.to_string()], "/usr/local/bin:/usr/bin:/bin").map(|p| p.argv)
    }

    #[test]
    fn only_a_plain_line_of_a_program_in_path_skips_the_shell() {
        assert_eq!(of("true"), Some(vec!["true".to_string()]));
        assert_eq!(of("  sleep   1 "), Some(vec!["sleep".to_string(), "1".to_string()]));
        assert!(direct(&["true".into(), "true".into()], "/usr/bin:/bin").is_none(), "two lines are a script");
        for shell in ["echo $HOME", "a=1 true", "cd /tmp", "true; false", "sleep 1 &", "echo 'x'", "ls *", "echo a > f", "echo ~", "true -x", "echo -n a", "time sleep 1", "no-such-program-here", "source env.sh", "exit 3", ""] {
            assert_eq!(of(shell), None, "{shell:?} needs the shell");
        }
        let found = direct(&["sleep 1".into()], "relative:/usr/bin:/bin").expect("sleep");
        assert!(found.path.is_absolute() && found.path.ends_with("sleep"), "{found:?}");
        let script = program(&["echo $HOME".into()], "set -e\necho $HOME\n", Path::new("/bin/bash"), "/usr/bin:/bin");
        assert_eq!(script.argv, ["/bin/bash", "-c", "set -e\necho $HOME\n"]);
    }
}
