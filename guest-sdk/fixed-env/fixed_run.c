// wharf-fixed-run: runs a kit's build tool with what the kernel tells it
// about files and randomness fixed, so that the snapshot the tool takes of
// the guest is a function of the sources alone.
//
//   wharf-fixed-run COMMAND [ARG]...
//
// componentize-js (Wizer) and componentize-py run the activity module's top
// level once at build time and keep the guest's memory as the component's
// initial state. The guest reads file metadata (times, and inode numbers
// through WASI's metadata hash) and random bytes, and some of those bytes stay
// in its memory, if only in freed blocks. The tools reach the kernel both
// through libc and with raw system calls, so this intercepts the system calls
// themselves (seccomp sends the few that matter to this tracer; everything
// else runs untouched):
//
// - stat, lstat, fstat, newfstatat, statx: all file times read as
//   WHARF_FIXED_TIME (default 1980-01-01); the inode number of a file under
//   one of the WHARF_FIXED_ROOT directories (colon-separated, first match
//   wins) becomes a hash of the root's place in the list and its path below;
// - getdents64: the same inode numbers in directory entries;
// - getrandom: bytes from a stream keyed by WHARF_FIXED_SEED and the length
//   asked for (the build derives the seed from a hash of the sources).
//
// Clocks do not need a system call (the vDSO answers them): the command runs
// with WHARF_FIXED_LIB (fixed_env.c, which fixes those that go through libc)
// preloaded.
//
// Linux on x86_64 only; elsewhere the kits build without it (and their
// output is then not reproducible).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#if !defined(__x86_64__) || !defined(__linux__)
#error "wharf-fixed-run supports Linux on x86_64 only"
#endif

static const long TRAPPED[] = {SYS_stat, SYS_lstat, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_getdents64, SYS_getrandom};
#define NTRAPPED (sizeof TRAPPED / sizeof TRAPPED[0])

static uint64_t seed;
static int64_t fixed_time = 315532800;  // 1980-01-01, as zip and reproducible-builds do

#define MAX_ROOTS 8
static char *roots[MAX_ROOTS];
static size_t root_lens[MAX_ROOTS];
static int nroots;

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static void configure(void) {
    const char *s = getenv("WHARF_FIXED_SEED");
    seed = fnv1a(0xcbf29ce484222325ULL, s ? s : "");
    const char *t = getenv("WHARF_FIXED_TIME");
    if (t && *t) fixed_time = strtoll(t, NULL, 10);
    const char *r = getenv("WHARF_FIXED_ROOT");
    char *list = r ? strdup(r) : NULL;
    char *save = NULL;
    for (char *tok = list ? strtok_r(list, ":", &save) : NULL; tok && nroots < MAX_ROOTS;
         tok = strtok_r(NULL, ":", &save)) {
        size_t len = strlen(tok);
        while (len > 1 && tok[len - 1] == '/') len--;
        roots[nroots] = tok;
        root_lens[nroots++] = len;
    }
}

// --- the tracee's memory and paths ---------------------------------------

static int peek(pid_t pid, uint64_t addr, void *buf, size_t len) {
    struct iovec local = {buf, len}, remote = {(void *)addr, len};
    return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

static int poke(pid_t pid, uint64_t addr, const void *buf, size_t len) {
    struct iovec local = {(void *)buf, len}, remote = {(void *)addr, len};
    return process_vm_writev(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

// A NUL-terminated string of the tracee's, read a page at most at a time.
static int peek_string(pid_t pid, uint64_t addr, char *buf, size_t size) {
    size_t got = 0;
    while (got + 1 < size) {
        size_t chunk = 4096 - ((addr + got) & 4095);
        if (chunk > size - 1 - got) chunk = size - 1 - got;
        if (peek(pid, addr + got, buf + got, chunk) != 0) return -1;
        void *nul = memchr(buf + got, 0, chunk);
        if (nul) return 0;
        got += chunk;
    }
    buf[size - 1] = 0;
    return -1;
}

static int link_of(pid_t pid, const char *what, char *buf, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/%s", pid, what);
    ssize_t n = readlink(link, buf, size - 1);
    if (n < 0) return -1;
    buf[n] = 0;
    return 0;
}

static int fd_path(pid_t pid, long fd, char *buf, size_t size) {
    char what[32];
    snprintf(what, sizeof what, "fd/%ld", fd);
    return link_of(pid, what, buf, size);
}

// The absolute path a (dirfd, path) pair names, as far as it can be told
// without following symbolic links.
static int at_path(pid_t pid, long dirfd, uint64_t path_addr, char *out, size_t size) {
    char path[4096], dir[4096];
    if (peek_string(pid, path_addr, path, sizeof path) != 0) return -1;
    if (path[0] == '/') return snprintf(out, size, "%s", path) < (int)size ? 0 : -1;
    int r = (int)dirfd == AT_FDCWD ? link_of(pid, "cwd", dir, sizeof dir) : fd_path(pid, dirfd, dir, sizeof dir);
    if (r != 0) return -1;
    if (!path[0]) return snprintf(out, size, "%s", dir) < (int)size ? 0 : -1;
    return snprintf(out, size, "%s/%s", dir, path) < (int)size ? 0 : -1;
}

// --- the values made fixed -------------------------------------------------

static void fix_ino(const char *path, uint64_t *ino) {
    if (!path) return;
    for (int i = 0; i < nroots; i++) {
        size_t len = root_lens[i];
        if (strncmp(path, roots[i], len) != 0 || (path[len] != '/' && path[len] != 0)) continue;
        *ino = fnv1a(0xcbf29ce484222325ULL ^ (uint64_t)i, path + len) | 1;
        return;
    }
}

static void fix_stat(pid_t pid, uint64_t addr, const char *path) {
    struct stat st;
    if (peek(pid, addr, &st, sizeof st) != 0) return;
    st.st_atim.tv_sec = st.st_mtim.tv_sec = st.st_ctim.tv_sec = fixed_time;
    st.st_atim.tv_nsec = st.st_mtim.tv_nsec = st.st_ctim.tv_nsec = 0;
    uint64_t ino = st.st_ino;
    fix_ino(path, &ino);
    st.st_ino = ino;
    poke(pid, addr, &st, sizeof st);
}

static void fix_statx(pid_t pid, uint64_t addr, const char *path) {
    struct statx st;
    if (peek(pid, addr, &st, sizeof st) != 0) return;
    struct statx_timestamp t = {.tv_sec = fixed_time, .tv_nsec = 0};
    st.stx_atime = st.stx_btime = st.stx_ctime = st.stx_mtime = t;
    uint64_t ino = st.stx_ino;
    fix_ino(path, &ino);
    st.stx_ino = ino;
    poke(pid, addr, &st, sizeof st);
}

static void fix_dirents(pid_t pid, long fd, uint64_t addr, size_t len) {
    char dir[4096], path[8192];
    if (!nroots || len == 0 || len > (1 << 20) || fd_path(pid, fd, dir, sizeof dir) != 0) return;
    unsigned char *buf = malloc(len);
    if (!buf) return;
    if (peek(pid, addr, buf, len) == 0) {
        // struct linux_dirent64: u64 d_ino, s64 d_off, u16 d_reclen, u8 d_type, char d_name[]
        for (size_t off = 0; off + 19 < len;) {
            uint16_t reclen;
            memcpy(&reclen, buf + off + 16, 2);
            if (reclen < 20 || off + reclen > len) break;
            const char *name = (const char *)buf + off + 19;
            if (memchr(name, 0, reclen - 19) && snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof path) {
                uint64_t ino;
                memcpy(&ino, buf + off, 8);
                fix_ino(path, &ino);
                memcpy(buf + off, &ino, 8);
            }
            off += reclen;
        }
        poke(pid, addr, buf, len);
    }
    free(buf);
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// The same bytes for the same length: which thread asks first must not
// matter, and the tool's own threads ask too.
static void fix_random(pid_t pid, uint64_t addr, size_t len) {
    uint64_t x = seed ^ (uint64_t)len;
    unsigned char chunk[4096];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof chunk ? len - done : sizeof chunk;
        for (size_t i = 0; i < n; i += 8) {
            uint64_t v = splitmix(&x);
            memcpy(chunk + i, &v, n - i < 8 ? n - i : 8);
        }
        if (poke(pid, addr + done, chunk, n) != 0) return;
        done += n;
    }
}

// At the exit of a trapped system call: rewrite what it returned.
static void fix_result(pid_t pid, const struct user_regs_struct *entry, long result) {
    if (result < 0) return;
    char path[8192];
    const char *p = NULL;
    switch (entry->orig_rax) {
    case SYS_stat:
    case SYS_lstat:
        if (nroots && at_path(pid, AT_FDCWD, entry->rdi, path, sizeof path) == 0) p = path;
        fix_stat(pid, entry->rsi, p);
        break;
    case SYS_fstat:
        if (nroots && fd_path(pid, (long)entry->rdi, path, sizeof path) == 0) p = path;
        fix_stat(pid, entry->rsi, p);
        break;
    case SYS_newfstatat:
        if (nroots && at_path(pid, (long)entry->rdi, entry->rsi, path, sizeof path) == 0) p = path;
        fix_stat(pid, entry->rdx, p);
        break;
    case SYS_statx:
        if (nroots && at_path(pid, (long)entry->rdi, entry->rsi, path, sizeof path) == 0) p = path;
        fix_statx(pid, entry->r8, p);
        break;
    case SYS_getdents64:
        fix_dirents(pid, (long)entry->rdi, entry->rsi, (size_t)result);
        break;
    case SYS_getrandom:
        fix_random(pid, entry->rdi, (size_t)result);
        break;
    }
}

// --- tracing ---------------------------------------------------------------

// The registers at a trapped call's entry, by thread, until its exit.
#define SLOTS 4096
static struct {
    pid_t pid;
    struct user_regs_struct regs;
} pending[SLOTS];

static int slot_of(pid_t pid, int create) {
    for (int i = 0; i < SLOTS; i++) {
        int s = (int)(((unsigned)pid + (unsigned)i) % SLOTS);
        if (pending[s].pid == pid) return s;
        if (pending[s].pid == 0) {
            if (!create) return -1;
            pending[s].pid = pid;
            return s;
        }
    }
    return -1;
}

// Open addressing without tombstones: re-insert what follows a removed slot.
static void release(int s) {
    pending[s].pid = 0;
    for (int i = (s + 1) % SLOTS; pending[i].pid; i = (i + 1) % SLOTS) {
        pid_t pid = pending[i].pid;
        struct user_regs_struct regs = pending[i].regs;
        pending[i].pid = 0;
        int t = slot_of(pid, 1);
        pending[t].regs = regs;
    }
}

static void install_filter(void) {
    struct sock_filter filter[4 + NTRAPPED + 2];
    size_t n = 0;
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (size_t i = 0; i < NTRAPPED; i++)
        filter[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)TRAPPED[i], (uint8_t)(NTRAPPED - i), 0);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    filter[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE);
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("wharf-fixed-run: seccomp");
        _exit(127);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: wharf-fixed-run COMMAND [ARG]...\n");
        return 2;
    }
    configure();
    pid_t child = fork();
    if (child < 0) {
        perror("wharf-fixed-run: fork");
        return 127;
    }
    if (child == 0) {
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) {
            perror("wharf-fixed-run: ptrace");
            _exit(127);
        }
        raise(SIGSTOP);
        const char *lib = getenv("WHARF_FIXED_LIB");
        if (lib && *lib && setenv("LD_PRELOAD", lib, 1) != 0) _exit(127);
        install_filter();
        execvp(argv[1], argv + 1);
        fprintf(stderr, "wharf-fixed-run: %s: %s\n", argv[1], strerror(errno));
        _exit(127);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status)) {
        fprintf(stderr, "wharf-fixed-run: the command did not start\n");
        return 127;
    }
    long options = PTRACE_O_EXITKILL | PTRACE_O_TRACESECCOMP | PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE |
                   PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC;
    if (ptrace(PTRACE_SETOPTIONS, child, 0, options) != 0) {
        perror("wharf-fixed-run: ptrace options");
        kill(child, SIGKILL);
        return 127;
    }
    ptrace(PTRACE_CONT, child, 0, 0);
    int exit_code = 127;
    for (;;) {
        pid_t pid = waitpid(-1, &status, __WALL);
        if (pid < 0) {
            if (errno == EINTR) continue;
            break;  // ECHILD: every tracee is gone
        }
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            int s = slot_of(pid, 0);
            if (s >= 0) release(s);
            if (pid == child) exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            continue;
        }
        if (!WIFSTOPPED(status)) continue;
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        long deliver = 0;
        if (event == PTRACE_EVENT_SECCOMP) {
            int s = slot_of(pid, 1);
            if (s >= 0 && ptrace(PTRACE_GETREGS, pid, 0, &pending[s].regs) == 0) {
                // Stop again at this call's exit.
                ptrace(PTRACE_SYSCALL, pid, 0, 0);
                continue;
            }
            if (s >= 0) release(s);
        } else if (sig == (SIGTRAP | 0x80)) {
            int s = slot_of(pid, 0);
            struct user_regs_struct regs;
            if (s >= 0 && ptrace(PTRACE_GETREGS, pid, 0, &regs) == 0) fix_result(pid, &pending[s].regs, (long)regs.rax);
            if (s >= 0) release(s);
        } else if (event != 0) {
            // fork, clone, exec: new tracees are traced already.
        } else if (sig == SIGSTOP) {
            // A new tracee's first stop (or a stop request, not passed on).
        } else {
            deliver = sig;
        }
        ptrace(PTRACE_CONT, pid, 0, deliver);
    }
    return exit_code;
}
