/* LD_AUDIT library for bench/avx2_only.py: the process sees a CPU without AVX-512, AVX-VNNI or AMX, so
 * libraries that choose their kernels by cpuid (ONNX Runtime's MLAS, torch's ATen/oneDNN/MKL, OpenBLAS,
 * numpy) run their AVX2 kernels on the real CPU at its real speed.
 * Each cpuid/xgetbv instruction listed in $CPUID_MASK_SITES (lines "library-basename hex-vaddr
 * cpuid|xgetbv", found by objdump) becomes int3 when its library is mapped, before the library's
 * initializers run; the SIGTRAP handler executes the real instruction and clears those features' bits
 * (in cpuid leaves 7.0, 7.1 and 0xD, and in XCR0 for the AVX-512 and AMX register states). */
#define _GNU_SOURCE
#include <link.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_SITES 65536
static struct { uintptr_t addr; int is_xgetbv; } sites[MAX_SITES];
static int n_sites;
static long hits;

static int site_kind(uintptr_t addr) {
    for (int i = 0; i < n_sites; i++) if (sites[i].addr == addr) return sites[i].is_xgetbv;
    return -1;
}

static void on_trap(int sig, siginfo_t *info, void *ctx) {
    (void)sig; (void)info;
    ucontext_t *uc = ctx;
    greg_t *r = uc->uc_mcontext.gregs;
    uintptr_t at = (uintptr_t)r[REG_RIP] - 1;
    int kind = site_kind(at);
    if (kind < 0) { signal(SIGTRAP, SIG_DFL); return; }
    hits++;
    if (kind == 1) {
        uint32_t lo, hi, which = (uint32_t)r[REG_RCX];
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(which));
        if (which == 0) lo &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
        r[REG_RAX] = lo; r[REG_RDX] = hi; r[REG_RIP] = at + 3;
        return;
    }
    uint32_t leaf = (uint32_t)r[REG_RAX], sub = (uint32_t)r[REG_RCX], a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(leaf), "c"(sub));
    if (leaf == 7 && sub == 0) {
        b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
        c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
        d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
    } else if (leaf == 7 && sub == 1) {
        a &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
        d &= ~((1u << 4) | (1u << 5) | (1u << 10));
    } else if (leaf == 0xd && sub == 0) {
        a &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
    }
    r[REG_RAX] = a; r[REG_RBX] = b; r[REG_RCX] = c; r[REG_RDX] = d; r[REG_RIP] = at + 2;
}

static void report(void) {
    if (getenv("CPUID_MASK_VERBOSE")) fprintf(stderr, "cpuid_mask: %ld instructions masked\n", hits);
}

/* The listing, read once: a process maps hundreds of libraries. */
static struct { char *lib; unsigned long vaddr; int is_xgetbv; } *listed;
static int n_listed;

static void read_listing(void) {
    const char *listing = getenv("CPUID_MASK_SITES");
    FILE *f = listing ? fopen(listing, "r") : NULL;
    if (!f) return;
    char lib[4096], kind[16];
    unsigned long vaddr;
    int capacity = 0;
    while (fscanf(f, "%4095s %lx %15s", lib, &vaddr, kind) == 3) {
        if (n_listed == capacity) {
            capacity = capacity ? 2 * capacity : 1024;
            listed = realloc(listed, capacity * sizeof *listed);
            if (!listed) { fputs("cpuid_mask: out of memory\n", stderr); _exit(3); }
        }
        listed[n_listed].lib = strdup(lib);
        listed[n_listed].vaddr = vaddr;
        listed[n_listed].is_xgetbv = strcmp(kind, "xgetbv") == 0;
        n_listed++;
    }
    fclose(f);
}

unsigned int la_version(unsigned int version) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGTRAP, &sa, NULL);
    atexit(report);
    read_listing();
    return version;
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie) {
    (void)lmid; (void)cookie;
    char real[4096];
    if (!n_listed || !*map->l_name || !realpath(map->l_name, real)) return 0;
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < n_listed; i++) {
        if (strcmp(listed[i].lib, real) != 0) continue;
        if (n_sites >= MAX_SITES) { fprintf(stderr, "cpuid_mask: more than %d sites\n", MAX_SITES); _exit(3); }
        unsigned char *at = (unsigned char *)(map->l_addr + listed[i].vaddr);
        int is_xgetbv = listed[i].is_xgetbv;
        if (at[0] != 0x0f || at[1] != (is_xgetbv ? 0x01 : 0xa2)) {
            fprintf(stderr, "cpuid_mask: %s+%lx is not %s; the site listing is stale\n", real, listed[i].vaddr,
                    is_xgetbv ? "xgetbv" : "cpuid");
            _exit(3);
        }
        uintptr_t first = (uintptr_t)at & ~(uintptr_t)(page - 1);
        size_t span = (((uintptr_t)at + 2) & ~(uintptr_t)(page - 1)) - first + page;
        if (mprotect((void *)first, span, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
            perror("cpuid_mask: mprotect");
            _exit(3);
        }
        at[0] = 0xcc;
        mprotect((void *)first, span, PROT_READ | PROT_EXEC);
        sites[n_sites].addr = (uintptr_t)at;
        sites[n_sites].is_xgetbv = is_xgetbv;
        n_sites++;
    }
    return 0;
}
