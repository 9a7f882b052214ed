/* config.c — the scheduling config: defaults, validation and its JSON form. */
#include "pd/pd_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * JSON form (flat object, PD's names):
 *   "max-replicas" (alias "max_peer_count"), "leader-schedule-limit",
 *   "region-schedule-limit", "replica-schedule-limit", "max-pending-peer-count",
 *   "max-snapshot-count": integers;
 *   "max-store-down-time", "leader-operator-timeout", "region-operator-timeout":
 *   Go-style duration strings ("30m0s", "10s", "1h30m", "500ms") or an integer of seconds.
 */

void pd_config_default(struct pd_config *cfg)
{
    cfg->max_replicas = 3;
    cfg->max_store_down_time_ms = 30 * 60 * 1000;
    cfg->leader_schedule_limit = 4;
    cfg->region_schedule_limit = 2048;
    cfg->replica_schedule_limit = 64;
    cfg->leader_operator_timeout_ms = 10 * 1000;
    cfg->region_operator_timeout_ms = 10 * 60 * 1000;
    cfg->max_pending_peer_count = 64;
    cfg->max_snapshot_count = 64;
}

int pd_config_validate(const struct pd_config *cfg, char *errmsg, size_t errmsg_len)
{
    const char *bad = NULL;
    if (cfg->max_replicas < 1 || cfg->max_replicas > PD_MAX_PEERS)
        bad = "max-replicas must be 1..16";
    else if (cfg->max_store_down_time_ms < PD_STORE_DISCONNECT_MS)
        bad = "max-store-down-time must be at least 20s: stores send a heartbeat every 10s and "
              "one counts as disconnected after 20s without one, so a shorter time would find "
              "live stores down between two heartbeats";
    else if (cfg->leader_operator_timeout_ms == 0 || cfg->region_operator_timeout_ms == 0)
        bad = "operator timeouts must be positive";
    else if (cfg->leader_schedule_limit > 1000000 || cfg->region_schedule_limit > 1000000 ||
             cfg->replica_schedule_limit > 1000000)
        bad = "schedule limits must be at most 1000000";
    else if (cfg->max_pending_peer_count == 0 || cfg->max_snapshot_count == 0 ||
             cfg->max_pending_peer_count > 1000000 || cfg->max_snapshot_count > 1000000)
        bad = "max-pending-peer-count and max-snapshot-count must be 1..1000000";
    if (bad == NULL)
        return PD_OK;
    if (errmsg && errmsg_len)
        snprintf(errmsg, errmsg_len, "%s", bad);
    return PD_ERR_INVALID;
}

static void format_duration(uint64_t ms, char *out, size_t len)
{
    if (ms % 1000 != 0) {
        snprintf(out, len, "%llums", (unsigned long long)ms);
        return;
    }
    unsigned long long s = ms / 1000, h = s / 3600, m = s % 3600 / 60, sec = s % 60;
    if (h)
        snprintf(out, len, "%lluh%llum%llus", h, m, sec);
    else if (m)
        snprintf(out, len, "%llum%llus", m, sec);
    else
        snprintf(out, len, "%llus", sec);
}

/* parse_duration accepts e.g. "1h30m", "45s", "250ms"; 0 on success. */
static int parse_duration(const char *s, uint64_t *ms)
{
    uint64_t total = 0;
    if (*s == '\0')
        return -1;
    while (*s) {
        if (*s < '0' || *s > '9')
            return -1;
        uint64_t n = 0;
        while (*s >= '0' && *s <= '9') {
            if (n > 1000000000000ull)
                return -1;
            n = n * 10 + (uint64_t)(*s++ - '0');
        }
        uint64_t unit;
        if (strncmp(s, "ms", 2) == 0) {
            unit = 1;
            s += 2;
        } else if (*s == 'h') {
            unit = 3600000;
            s++;
        } else if (*s == 'm') {
            unit = 60000;
            s++;
        } else if (*s == 's') {
            unit = 1000;
            s++;
        } else {
            return -1;
        }
        if (n > UINT64_MAX / unit / 4)
            return -1;
        total += n * unit;
    }
    *ms = total;
    return 0;
}

char *pd_config_to_json(const struct pd_config *cfg)
{
    char d1[48], d2[48], d3[48];
    format_duration(cfg->max_store_down_time_ms, d1, sizeof d1);
    format_duration(cfg->leader_operator_timeout_ms, d2, sizeof d2);
    format_duration(cfg->region_operator_timeout_ms, d3, sizeof d3);
    json_t *o = json_pack("{s:I,s:s,s:I,s:I,s:I,s:s,s:s,s:I,s:I}", "max-replicas",
                          (json_int_t)cfg->max_replicas, "max-store-down-time", d1,
                          "leader-schedule-limit", (json_int_t)cfg->leader_schedule_limit,
                          "region-schedule-limit", (json_int_t)cfg->region_schedule_limit,
                          "replica-schedule-limit", (json_int_t)cfg->replica_schedule_limit,
                          "leader-operator-timeout", d2, "region-operator-timeout", d3,
                          "max-pending-peer-count", (json_int_t)cfg->max_pending_peer_count,
                          "max-snapshot-count", (json_int_t)cfg->max_snapshot_count);
    if (o == NULL)
        return NULL;
    char *text = json_dumps(o, JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

static int get_count(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int get_duration(json_t *v, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s <= 0 || s > 100000000)
            return -1;
        *out = (uint64_t)s * 1000;
        return 0;
    }
    if (json_is_string(v))
        return parse_duration(json_string_value(v), out);
    return -1;
}

int pd_config_apply_json(struct pd_config *cfg, const char *json, size_t len, char *errmsg,
                         size_t errmsg_len)
{
    json_error_t jerr;
    int rc = PD_ERR_INVALID;
    json_t *o = json_loadb(json, len, 0, &jerr);
    if (o == NULL || !json_is_object(o)) {
        snprintf(errmsg, errmsg_len, "config must be a JSON object");
        goto cleanup;
    }
    struct pd_config next = *cfg;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        int bad;
        if (strcmp(k, "max-replicas") == 0 || strcmp(k, "max_peer_count") == 0)
            bad = get_count(v, &next.max_replicas);
        else if (strcmp(k, "leader-schedule-limit") == 0)
            bad = get_count(v, &next.leader_schedule_limit);
        else if (strcmp(k, "region-schedule-limit") == 0)
            bad = get_count(v, &next.region_schedule_limit);
        else if (strcmp(k, "replica-schedule-limit") == 0)
            bad = get_count(v, &next.replica_schedule_limit);
        else if (strcmp(k, "max-pending-peer-count") == 0)
            bad = get_count(v, &next.max_pending_peer_count);
        else if (strcmp(k, "max-snapshot-count") == 0)
            bad = get_count(v, &next.max_snapshot_count);
        else if (strcmp(k, "max-store-down-time") == 0)
            bad = get_duration(v, &next.max_store_down_time_ms);
        else if (strcmp(k, "leader-operator-timeout") == 0)
            bad = get_duration(v, &next.leader_operator_timeout_ms);
        else if (strcmp(k, "region-operator-timeout") == 0)
            bad = get_duration(v, &next.region_operator_timeout_ms);
        else {
            snprintf(errmsg, errmsg_len, "unknown config field \"%.64s\"", k);
            goto cleanup;
        }
        if (bad) {
            snprintf(errmsg, errmsg_len, "bad value for \"%.64s\"", k);
            goto cleanup;
        }
    }
    rc = pd_config_validate(&next, errmsg, errmsg_len);
    if (rc == PD_OK)
        *cfg = next;
cleanup:
    json_decref(o);
    return rc;
}
