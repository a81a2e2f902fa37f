/* ovs_shim.h: the narrow C API between libopenvswitch and cutover's C++ code. OVS headers are not
 * C++-clean, so only ovs_shim.c (compiled as C) includes them; C++ sees opaque handles, plain
 * strings and integers. Nothing here is thread-safe: OvsSwitch calls it from one dedicated thread.
 * Errors: functions return 0 on success, else an errno-style code with *err set to a malloc'd
 * message (free with cov_free). */
#ifndef CUTOVER_OVS_SHIM_H
#define CUTOVER_OVS_SHIM_H 1

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One-time library setup: quiets vlog to warnings on stderr, ignores SIGPIPE. */
void cov_init(void);
void cov_free(void* p);
void cov_free_strings(char** v, size_t n);

/* ---- OpenFlow ---- */
typedef struct cov_of cov_of;

/* Connects to target (e.g. "unix:/run/ovs/br-int.mgmt") speaking OpenFlow 1.4. */
int cov_of_open(const char* target, int timeout_ms, cov_of** out, char** err);
void cov_of_close(cov_of* of);

/* A flow parsed once by OVS's parser: canonical text for diffing, and the parsed flow mod that
 * cov_of_bundle encodes without parsing the text again. */
typedef struct cov_flow cov_flow;

/* Parses flow text ("table=0,priority=10,in_port=1 actions=output:2") and prints it back in OVS's
 * canonical form, split into the flow's identity (table, priority, match) and its actions, so that
 * desired flows and flows dumped from the switch compare as strings. With `out` non-NULL the
 * parsed flow is kept for cov_of_bundle (free it with cov_flow_free). With key and actions NULL
 * it only parses (for flows that need no comparison). */
int cov_flow_parse(const char* flow, cov_flow** out, char** key, char** actions, char** err);
void cov_flow_free(cov_flow* f);

enum cov_flow_op { COV_FLOW_ADD = 0, COV_FLOW_MODIFY = 1, COV_FLOW_DELETE = 2 };

/* Sends ops[i] flows[i] as one atomic, ordered OpenFlow bundle, every flow tagged with `cookie`
 * (modify/delete only touch flows carrying exactly that cookie), and returns only after the
 * commit reply and a barrier reply: a 0 return means the switch has applied the change. Where
 * parsed[i] is non-NULL it is used instead of parsing flows[i] (parsed may be NULL); the others
 * are parsed as the bundle streams out in chunks, and a flow that does not parse ends it. If any
 * message is refused or a flow does not parse, the bundle is discarded: nothing is applied. */
int cov_of_bundle(cov_of* of, const int* ops, const char* const* flows, cov_flow* const* parsed,
                  size_t n, uint64_t cookie, char** err);

/* Dumps the flows whose cookie matches cookie/mask, in canonical key/actions form. */
int cov_of_dump(cov_of* of, uint64_t cookie, uint64_t mask, char*** keys, char*** actions,
                size_t* n, char** err);

/* Injects a frame as if it had arrived on in_port: a packet-out whose only action is
 * output:TABLE, so it runs through the installed pipeline (classification, flooding, tunnels).
 * Returns after a barrier: an error from the switch is reported, not silently dropped. */
int cov_of_packet_out(cov_of* of, int64_t in_port, const void* frame, size_t len, char** err);

/* One OpenFlow meter with a single drop band, in kbit/s with a burst in kbit (OFPMF13_KBPS |
 * OFPMF13_BURST). */
struct cov_meter {
  uint32_t id;
  uint32_t kbps;
  uint32_t burst_kbit;
  int simple; /* 1: kbps + burst flags and one drop band (what cov_of_meter_mod sets) */
};
enum cov_meter_op { COV_METER_ADD = 0, COV_METER_MODIFY = 1, COV_METER_DELETE = 2 };
/* Adds, modifies or deletes (only m->id counts) a meter; returns after a barrier, with the
 * switch's refusal in *err. Deleting a meter also deletes the flows that use it (OpenFlow). */
int cov_of_meter_mod(cov_of* of, int op, const struct cov_meter* m, char** err);
/* Every meter on the switch (free *out with cov_free). */
int cov_of_meters(cov_of* of, struct cov_meter** out, size_t* n, char** err);

/* ---- OVSDB (Open_vSwitch database through the IDL) ---- */
typedef struct cov_db cov_db;

struct cov_iface {
  const char* name;
  const char* type;
  const char* bridge;    /* "" if not on a bridge */
  const char* iface_id;  /* external_ids:iface-id, or "" */
  const char* remote_ip; /* options:remote_ip, or "" */
  int64_t ofport;        /* -1 when unassigned or failed */
  int link_up;           /* link_state == "up" */
  int owned;             /* external_ids:cutover-owned == "true" */
  /* The port's QoS row: -1 none, -2 one that is not ours; else our linux-htb max-rate, bit/s. */
  int64_t qos_max_rate;
  int64_t qos_burst; /* our queue 0's burst, bits (0 if none) */
};

/* remote: e.g. "unix:/run/ovs/db.sock"; reconnects by itself. */
cov_db* cov_db_create(const char* remote);
void cov_db_destroy(cov_db* db);
/* Processes what the server sent; returns the IDL sequence number (changes when contents do). */
unsigned int cov_db_run(cov_db* db);
int cov_db_connected(cov_db* db);
/* Blocks until the IDL has work, wake_fd is readable, or timeout_ms passes (-1 = no timeout). */
void cov_db_wait(cov_db* db, int wake_fd, int timeout_ms);
/* Fills up to max interfaces; strings stay valid until the next cov_db_run. Returns the count
 * (which may exceed max: call again with a bigger array). */
size_t cov_db_interfaces(cov_db* db, struct cov_iface* out, size_t max);

/* Creates the bridge if missing (datapath type, OpenFlow 1.3-1.5, fail_mode=secure,
 * external_ids:cutover-owned=true) and leaves an existing one's settings alone except for adding
 * the protocols we need. */
int cov_db_ensure_bridge(cov_db* db, const char* bridge, const char* datapath_type, char** err);
/* Adds a port with one interface of `type` and options given as "k=v" strings, tagged
 * external_ids:cutover-owned=true. */
int cov_db_add_port(cov_db* db, const char* bridge, const char* name, const char* type,
                    const char* const* options, size_t n_options, char** err);
/* Shapes what the port `name` (on any bridge) sends: our linux-htb QoS row with max-rate and
 * one queue (0) with max-rate and burst, in bit/s and bits, tagged external_ids:cutover-owned;
 * max_rate 0 removes ours. Refuses a port whose QoS is someone else's. */
int cov_db_set_port_qos(cov_db* db, const char* name, int64_t max_rate, int64_t burst, char** err);
/* Deletes our QoS rows (and their queues) that no port uses any more: the hypervisor deleted
 * the VM's port (the VM left or stopped) and QoS is a root table, so they would stay. Returns
 * how many it deleted (0: no transaction), or -1 with *err set. */
int cov_db_gc_qos(cov_db* db, char** err);
/* Removes a port we own from the bridge; refuses ports not tagged cutover-owned. */
int cov_db_del_port(cov_db* db, const char* bridge, const char* name, char** err);

#ifdef __cplusplus
}
#endif
#endif
