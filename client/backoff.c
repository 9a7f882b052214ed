/* backoff.c — exponential retry delays with jitter, bounded by an operation's deadline. */
#include <time.h>

#include "client/client_internal.h"

void client_backoff_init(struct backoff *b, const struct client *c)
{
    uint64_t now = rpc_now_ms();
    b->deadline_ms = now + (uint64_t)c->opts.timeout_ms;
    b->base_ms = c->opts.backoff_base_ms;
    b->max_ms = c->opts.backoff_max_ms;
    b->attempt = 0;
    /* Jitter only spreads retries of threads that collided; any seed will do. */
    b->rand_state = (uint32_t)(now ^ (uintptr_t)b) | 1u;
}

void client_backoff_reset(struct backoff *b)
{
    b->attempt = 0;
}

int client_backoff_remaining_ms(const struct backoff *b)
{
    uint64_t now = rpc_now_ms();
    if (now >= b->deadline_ms)
        return 0;
    uint64_t left = b->deadline_ms - now;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

int client_backoff_rpc_timeout_ms(const struct backoff *b, const struct client *c)
{
    int left = client_backoff_remaining_ms(b);
    int t = c->opts.rpc_timeout_ms;
    if (left < t)
        t = left;
    return t > 0 ? t : 1;
}

static uint32_t next_rand(struct backoff *b)
{
    /* xorshift32 */
    uint32_t x = b->rand_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b->rand_state = x;
    return x;
}

int client_backoff_sleep(struct backoff *b)
{
    int left = client_backoff_remaining_ms(b);
    if (left <= 0)
        return -1;
    long delay = b->base_ms;
    for (int i = 0; i < b->attempt && delay < b->max_ms; i++)
        delay *= 2;
    if (delay > b->max_ms)
        delay = b->max_ms;
    b->attempt++;
    /* Full delay in [delay/2, delay]. */
    delay = delay / 2 + (long)(next_rand(b) % (uint32_t)(delay / 2 + 1));
    if (delay > left)
        delay = left;
    struct timespec ts = {.tv_sec = delay / 1000, .tv_nsec = (delay % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return client_backoff_remaining_ms(b) > 0 ? 0 : -1;
}
