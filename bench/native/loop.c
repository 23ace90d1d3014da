/* commbench's native timed loop: program(k) of the mpi backend run in compiled code.
 *
 * An op's program is a flat list of instructions (8 int64 each: code, then arguments), built
 * in Python (bench/native/__init__.py: assemble) from the steps the op declared with
 * the backend's primitives. cb_run executes the list k times against the MPI library that
 * mpi4py loaded (this file is compiled with that MPI's mpicc and linked to the same libmpi),
 * so a sample of k calls costs one foreign call, and each call costs what it costs in C.
 *
 * Handles (communicator, datatypes, ops) come from mpi4py as integers: pointers in Open MPI,
 * ints in MPICH; cb_handles lets the Python side check they mean the same thing here.
 */
#define _POSIX_C_SOURCE 199309L
#include <mpi.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define CB_ABI 1 /* bump when the instruction format changes */

enum {
    CB_SEND = 1,       /* buf count dtype peer */
    CB_RECV = 2,       /* buf count dtype peer */
    CB_ISEND = 3,      /* buf count dtype peer: posts into the request list */
    CB_IRECV = 4,      /* buf count dtype peer */
    CB_WAITALL = 5,    /* waits for every request posted since the last waitall */
    CB_ALLREDUCE = 6,  /* sendbuf recvbuf count dtype op; sendbuf -1: MPI_IN_PLACE */
    CB_ALLGATHER = 7,  /* sendbuf sendcount recvbuf recvcount dtype */
    CB_REDSCAT = 8,    /* sendbuf recvbuf recvcount dtype op (MPI_Reduce_scatter_block) */
    CB_ALLTOALL = 9,   /* sendbuf sendcount recvbuf recvcount dtype */
    CB_BCAST = 10,     /* buf count dtype root */
    CB_BARRIER = 11,   /* - */
    CB_SPIN = 12,      /* nanoseconds: a busy wait on CLOCK_MONOTONIC, overshoot calibrated */
    CB_REPEAT = 13     /* times, length: the next `length` instructions, `times` times */
};

#define W 8 /* int64 words per instruction */
/* Every message carries this tag and every receive names it, as OSU does: a wildcard tag is
 * one more thing that differs from OSU's loop (its cost here was within the noise, issue 29). */
#define TAG 0
#define P(x) ((void *)(intptr_t)(x))
#define DT(x) ((MPI_Datatype)(intptr_t)(x))
#define OP(x) ((MPI_Op)(intptr_t)(x))

static int64_t spin_overshoot_ns = 0;

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void spin_ns(int64_t ns)
{
    int64_t end = now_ns() + ns;
    while (now_ns() < end)
        ;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The median overshoot of `trials` busy waits of `ns` (a preempted trial does not count);
 * later spins are shortened by it. Returns it. */
int64_t cb_calibrate_spin(int64_t ns, int trials)
{
    int64_t over[101];
    if (trials < 1)
        trials = 1;
    if (trials > 101)
        trials = 101;
    for (int i = 0; i < trials; i++) {
        int64_t t0 = now_ns();
        spin_ns(ns);
        over[i] = now_ns() - t0 - ns;
    }
    qsort(over, trials, sizeof over[0], cmp64);
    spin_overshoot_ns = over[trials / 2] > 0 ? over[trials / 2] : 0;
    return spin_overshoot_ns;
}

/* The spin as the program runs it: ns requested, the calibrated wait done. */
static void cb_spin(int64_t ns)
{
    int64_t t = ns - spin_overshoot_ns;
    if (t > 0)
        spin_ns(t);
}

/* What this build takes the handles to be, for the Python side to compare with mpi4py's. */
int cb_handles(int64_t *out, int n)
{
    int64_t v[8] = {(int64_t)(intptr_t)MPI_COMM_WORLD, (int64_t)(intptr_t)MPI_FLOAT,
                    (int64_t)(intptr_t)MPI_SUM, (int64_t)(intptr_t)MPI_DOUBLE,
                    (int64_t)sizeof(MPI_Comm), (int64_t)sizeof(MPI_Request), MPI_VERSION,
                    CB_ABI};
    for (int i = 0; i < n && i < 8; i++)
        out[i] = v[i];
    return 8;
}

static inline int step(const int64_t *a, MPI_Comm comm, MPI_Request *reqs, int *nreq)
{
    switch (a[0]) {
    case CB_SEND:
        return MPI_Send(P(a[1]), (int)a[2], DT(a[3]), (int)a[4], TAG, comm);
    case CB_RECV:
        return MPI_Recv(P(a[1]), (int)a[2], DT(a[3]), (int)a[4], TAG, comm,
                        MPI_STATUS_IGNORE);
    case CB_ISEND:
        return MPI_Isend(P(a[1]), (int)a[2], DT(a[3]), (int)a[4], TAG, comm, &reqs[(*nreq)++]);
    case CB_IRECV:
        return MPI_Irecv(P(a[1]), (int)a[2], DT(a[3]), (int)a[4], TAG, comm,
                         &reqs[(*nreq)++]);
    case CB_WAITALL: {
        int n = *nreq;
        *nreq = 0;
        return MPI_Waitall(n, reqs, MPI_STATUSES_IGNORE);
    }
    case CB_ALLREDUCE:
        return MPI_Allreduce(a[1] == -1 ? MPI_IN_PLACE : P(a[1]), P(a[2]), (int)a[3], DT(a[4]),
                             OP(a[5]), comm);
    case CB_ALLGATHER:
        return MPI_Allgather(P(a[1]), (int)a[2], DT(a[5]), P(a[3]), (int)a[4], DT(a[5]), comm);
    case CB_REDSCAT:
        return MPI_Reduce_scatter_block(P(a[1]), P(a[2]), (int)a[3], DT(a[4]), OP(a[5]), comm);
    case CB_ALLTOALL:
        return MPI_Alltoall(P(a[1]), (int)a[2], DT(a[5]), P(a[3]), (int)a[4], DT(a[5]), comm);
    case CB_BCAST:
        return MPI_Bcast(P(a[1]), (int)a[2], DT(a[3]), (int)a[4], comm);
    case CB_BARRIER:
        return MPI_Barrier(comm);
    case CB_SPIN:
        cb_spin(a[1]);
        return MPI_SUCCESS;
    default:
        return MPI_ERR_OTHER;
    }
}

/* Run the n instructions of prog k times on comm. maxreq: the most requests posted between
 * two waitalls. Returns MPI_SUCCESS or the first error code (the loop stops there). */
int cb_run(int64_t comm_handle, const int64_t *prog, int64_t n, int64_t k, int64_t maxreq)
{
    MPI_Comm comm = (MPI_Comm)(intptr_t)comm_handle;
    MPI_Request *reqs = NULL;
    int nreq = 0, rc = MPI_SUCCESS;
    if (maxreq > 0 && !(reqs = malloc((size_t)maxreq * sizeof *reqs)))
        return MPI_ERR_NO_MEM;
    for (int64_t it = 0; it < k && rc == MPI_SUCCESS; it++) {
        for (int64_t i = 0; i < n && rc == MPI_SUCCESS; i++) {
            const int64_t *a = prog + W * i;
            if (a[0] == CB_REPEAT) {
                int64_t times = a[1], len = a[2];
                for (int64_t t = 0; t < times && rc == MPI_SUCCESS; t++)
                    for (int64_t j = 1; j <= len && rc == MPI_SUCCESS; j++)
                        rc = step(a + W * j, comm, reqs, &nreq);
                i += len;
            } else {
                rc = step(a, comm, reqs, &nreq);
            }
        }
    }
    free(reqs);
    return rc;
}
