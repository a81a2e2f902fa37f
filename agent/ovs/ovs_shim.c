/* ovs_shim.c: the only file that includes Open vSwitch headers. Implements ovs_shim.h on top of
 * libopenvswitch: vconn (OpenFlow 1.4 bundles, barriers, flow dumps, canonical flow text) and the
 * OVSDB IDL for the Open_vSwitch schema (Bridge/Port/Interface). Compiled as C. */
#include <config.h>

#include "ovs_shim.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "byte-order.h"
#include "fatal-signal.h"
#include "openvswitch/dynamic-string.h"
#include "openvswitch/list.h"
#include "openvswitch/match.h"
#include "openvswitch/ofp-actions.h"
#include "openvswitch/ofp-bundle.h"
#include "openvswitch/ofp-errors.h"
#include "openvswitch/ofp-flow.h"
#include "openvswitch/ofp-meter.h"
#include "openvswitch/ofp-msgs.h"
#include "openvswitch/ofp-packet.h"
#include "openvswitch/ofp-print.h"
#include "openvswitch/ofp-protocol.h"
#include "openvswitch/ofp-util.h"
#include "openvswitch/ofpbuf.h"
#include "openvswitch/poll-loop.h"
#include "openvswitch/vconn.h"
#include "openvswitch/vlog.h"
#include "ovsdb-idl.h"
#include "smap.h"
#include "socket-util.h"
#include "util.h"
#include "vswitch-idl.h"

static int set_err(char** err, int code, const char* fmt, ...) {
  if (err) {
    va_list args;
    va_start(args, fmt);
    *err = xvasprintf(fmt, args);
    va_end(args);
  }
  return code ? code : EPROTO;
}

void cov_init(void) {
  static int done;
  if (done) return;
  done = 1;
  vlog_set_levels(NULL, VLF_CONSOLE, VLL_WARN);
  vlog_set_levels(NULL, VLF_SYSLOG, VLL_OFF);
  fatal_ignore_sigpipe();
}

void cov_free(void* p) { free(p); }

void cov_free_strings(char** v, size_t n) {
  for (size_t i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* ---------------------------------------------------------------- OpenFlow */

struct cov_of {
  struct vconn* vconn;  // dumps, barriers
  enum ofputil_protocol protocol;
  char* target;
  int bulk_fd;  // our own connection for bundles (see "Bulk path"), -1 until first use
};

int cov_of_open(const char* target, int timeout_ms, cov_of** out, char** err) {
  struct vconn* vconn = NULL;
  int error = vconn_open_block(target, 1u << OFP14_VERSION, DSCP_DEFAULT, timeout_ms, &vconn);
  if (error) {
    return set_err(err, error, "cannot open OpenFlow connection to %s: %s", target,
                   ovs_strerror(error));
  }
  cov_of* of = xzalloc(sizeof *of);
  of->vconn = vconn;
  of->protocol = ofputil_protocol_from_ofp_version(vconn_get_version(vconn));
  of->target = xstrdup(target);
  of->bulk_fd = -1;
  *out = of;
  return 0;
}

void cov_of_close(cov_of* of) {
  if (!of) return;
  vconn_close(of->vconn);
  if (of->bulk_fd >= 0) close(of->bulk_fd);
  free(of->target);
  free(of);
}

static void format_flow(uint8_t table_id, const struct match* match, int priority,
                        const struct ofpact* ofpacts, size_t ofpacts_len, char** key,
                        char** actions) {
  struct ds s = DS_EMPTY_INITIALIZER;
  ds_put_format(&s, "table=%u,priority=%d,", table_id, priority);
  /* Priority printed explicitly above; OFP_DEFAULT_PRIORITY makes match_format omit it. */
  match_format(match, NULL, &s, OFP_DEFAULT_PRIORITY);
  ds_chomp(&s, ',');
  *key = ds_steal_cstr(&s);

  struct ds a = DS_EMPTY_INITIALIZER;
  struct ofpact_format_params fp = {.port_map = NULL, .table_map = NULL, .s = &a};
  ofpacts_format(ofpacts, ofpacts_len, &fp);
  *actions = ds_steal_cstr(&a);
}

struct cov_flow {
  struct ofputil_flow_mod fm;
};

static char* parse_flow(struct ofputil_flow_mod* fm, const char* flow, int command) {
  enum ofputil_protocol usable;
  return parse_ofp_flow_mod_str(fm, flow, NULL, NULL, command, &usable);
}

static void destroy_fm(struct ofputil_flow_mod* fm) {
  free(CONST_CAST(struct ofpact*, fm->ofpacts));
  minimatch_destroy(&fm->match);
}

int cov_flow_parse(const char* flow, cov_flow** out, char** key, char** actions, char** err) {
  cov_flow* f = xzalloc(sizeof *f);
  char* perr = parse_flow(&f->fm, flow, OFPFC_ADD);
  if (perr) {
    int rc = set_err(err, EINVAL, "bad flow '%s': %s", flow, perr);
    free(perr);
    free(f);
    return rc;
  }
  if (key && actions) {
    struct match match;
    minimatch_expand(&f->fm.match, &match);
    format_flow(f->fm.table_id == 0xff ? 0 : f->fm.table_id, &match, f->fm.priority, f->fm.ofpacts,
                f->fm.ofpacts_len, key, actions);
  }
  if (out) {
    *out = f;
  } else {
    cov_flow_free(f);
  }
  return 0;
}

void cov_flow_free(cov_flow* f) {
  if (!f) return;
  destroy_fm(&f->fm);
  free(f);
}

static void format_ofp_error(const struct ofpbuf* msg, struct ds* s) {
  enum ofperr ofperr = ofperr_decode_msg(msg->data, NULL);
  ds_put_format(s, "%s%s", s->length ? "; " : "", ofperr_to_string(ofperr));
}

static int barrier(cov_of* of, char** err) {
  struct ofpbuf* request = ofputil_encode_barrier_request(vconn_get_version(of->vconn));
  struct ofpbuf* reply = NULL;
  int error = vconn_transact(of->vconn, request, &reply);
  ofpbuf_delete(reply);
  if (error) return set_err(err, error, "barrier failed: %s", ovs_strerror(error));
  return 0;
}

int cov_of_packet_out(cov_of* of, int64_t in_port, const void* frame, size_t len, char** err) {
  uint64_t stub[64 / 8];
  struct ofpbuf ofpacts = OFPBUF_STUB_INITIALIZER(stub);
  ofpact_put_OUTPUT(&ofpacts)->port = OFPP_TABLE;
  struct ofputil_packet_out po;
  memset(&po, 0, sizeof po);
  po.packet = frame;
  po.packet_len = len;
  po.buffer_id = UINT32_MAX;
  match_init_catchall(&po.flow_metadata);
  match_set_in_port(&po.flow_metadata, OFP_PORT_C((uint16_t)in_port));
  po.ofpacts = ofpacts.data;
  po.ofpacts_len = ofpacts.size;
  struct ofpbuf* msg = ofputil_encode_packet_out(&po, of->protocol);
  ofpbuf_uninit(&ofpacts);
  /* Sends it and a barrier; an error reply to the packet-out comes back in `reply`. */
  struct ofpbuf* reply = NULL;
  int error = vconn_transact_noreply(of->vconn, msg, &reply);
  if (error) return set_err(err, error, "packet-out failed: %s", ovs_strerror(error));
  if (reply) {
    struct ds s = DS_EMPTY_INITIALIZER;
    format_ofp_error(reply, &s);
    ofpbuf_delete(reply);
    error = set_err(err, EPROTO, "packet-out refused: %s", ds_cstr(&s));
    ds_destroy(&s);
    return error;
  }
  return 0;
}

/* ---- Bulk path: our own unix-socket OpenFlow connection for bundles. vconn writes one message
 * per syscall; a 50,000-flow bundle is then dominated by syscalls. Here the BUNDLE_ADDs are
 * encoded into one buffer and written in large chunks; OVS is still the codec for every
 * message. */

static int raw_write_all(int fd, const void* data, size_t len) {
  const char* p = data;
  while (len) {
    ssize_t n = write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    len -= n;
  }
  return 0;
}

static int raw_read_all(int fd, void* data, size_t len) {
  char* p = data;
  while (len) {
    ssize_t n = read(fd, p, len);
    if (n == 0) return EOF;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    len -= n;
  }
  return 0;
}

/* Reads one OpenFlow message, answering echo requests on the way. */
static int raw_recv(int fd, struct ofpbuf** out) {
  for (;;) {
    struct ofp_header oh;
    int error = raw_read_all(fd, &oh, sizeof oh);
    if (error) return error;
    size_t len = ntohs(oh.length);
    if (len < sizeof oh) return EPROTO;
    struct ofpbuf* msg = ofpbuf_new(len);
    ofpbuf_put(msg, &oh, sizeof oh);
    error = raw_read_all(fd, ofpbuf_put_uninit(msg, len - sizeof oh), len - sizeof oh);
    if (error) {
      ofpbuf_delete(msg);
      return error;
    }
    enum ofptype type;
    if (!ofptype_decode(&type, msg->data) && type == OFPTYPE_ECHO_REQUEST) {
      struct ofpbuf* reply = ofputil_encode_echo_reply(msg->data);
      error = raw_write_all(fd, reply->data, reply->size);
      ofpbuf_delete(reply);
      ofpbuf_delete(msg);
      if (error) return error;
      continue;
    }
    *out = msg;
    return 0;
  }
}

static void raw_close(cov_of* of) {
  if (of->bulk_fd >= 0) close(of->bulk_fd);
  of->bulk_fd = -1;
}

static int raw_connect(cov_of* of, struct ds* errors) {
  if (of->bulk_fd >= 0) return 0;
  if (strncmp(of->target, "unix:", 5)) {
    ds_put_format(errors, "bulk connection needs a unix: target, not %s", of->target);
    return EINVAL;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  struct sockaddr_un sun;
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  if (strlen(of->target + 5) >= sizeof sun.sun_path) {
    close(fd);
    ds_put_format(errors, "socket path too long: %s", of->target + 5);
    return ENAMETOOLONG;
  }
  strcpy(sun.sun_path, of->target + 5);
  int error = 0;
  if (connect(fd, (struct sockaddr*)&sun, sizeof sun) < 0) error = errno;
  struct ofpbuf* hello = ofputil_encode_hello(1u << OFP14_VERSION);
  if (!error) error = raw_write_all(fd, hello->data, hello->size);
  ofpbuf_delete(hello);
  struct ofpbuf* reply = NULL;
  if (!error) error = raw_recv(fd, &reply);
  if (!error) {
    enum ofptype type;
    const struct ofp_header* oh = reply->data;
    if (ofptype_decode(&type, oh) || type != OFPTYPE_HELLO || oh->version < OFP14_VERSION) {
      ds_put_format(errors, "switch did not agree to OpenFlow 1.4");
      error = EPROTO;
    }
    ofpbuf_delete(reply);
  }
  if (error) {
    if (!errors->length) ds_put_format(errors, "%s: %s", of->target, ovs_strerror(error));
    close(fd);
    return error;
  }
  of->bulk_fd = fd;
  return 0;
}

static void append_msg(struct ofpbuf* out, struct ofpbuf* msg) {
  ofpmsg_update_length(msg);
  ofpbuf_put(out, msg->data, msg->size);
  ofpbuf_delete(msg);
}

/* Reads replies until the one with `xid`; errors on the way are appended to `errors`. Sets
 * *final_error when the awaited reply itself is an error. */
static int raw_wait_xid(cov_of* of, ovs_be32 xid, struct ds* errors, bool* final_error) {
  for (;;) {
    struct ofpbuf* msg = NULL;
    int error = raw_recv(of->bulk_fd, &msg);
    if (error) {
      ds_put_format(errors, "%s%s", errors->length ? "; " : "",
                    error == EOF ? "switch closed the connection" : ovs_strerror(error));
      return error;
    }
    const struct ofp_header* oh = msg->data;
    enum ofptype type;
    const bool is_error = !ofptype_decode(&type, oh) && type == OFPTYPE_ERROR;
    if (is_error) format_ofp_error(msg, errors);
    const bool done = oh->xid == xid;
    if (done && final_error) *final_error = is_error;
    ofpbuf_delete(msg);
    if (done) return 0;
  }
}

int cov_of_bundle(cov_of* of, const int* ops, const char* const* flows, cov_flow* const* parsed,
                  size_t n, uint64_t cookie, char** err) {
  if (n == 0) return barrier(of, err);
  const enum ofp_version version = OFP14_VERSION;
  const enum ofputil_protocol protocol = ofputil_protocol_from_ofp_version(version);
  struct ds errors = DS_EMPTY_INITIALIZER;
  int error = raw_connect(of, &errors);

  struct ofputil_bundle_ctrl_msg bc;
  memset(&bc, 0, sizeof bc);
  bc.bundle_id = 1;
  bc.flags = OFPBF_ORDERED | OFPBF_ATOMIC;
  ovs_be32 barrier_xid = 0;
  /* Written as it fills, so that ovs-vswitchd takes in the first BUNDLE_ADDs on its own core
   * while the rest are still being encoded here; one write per chunk, not per message. */
  enum { CHUNK = 256 * 1024 };
  struct ofpbuf* out = ofpbuf_new(CHUNK + 4096);
  bool opened = false; /* the OPEN_REQUEST left (with the first chunk) */
  if (!error) {
    bc.type = OFPBCT_OPEN_REQUEST;
    append_msg(out, ofputil_encode_bundle_ctrl_request(version, &bc));
  }
  for (size_t i = 0; !error && i < n; i++) {
    const int command = ops[i] == COV_FLOW_ADD      ? OFPFC_ADD
                        : ops[i] == COV_FLOW_MODIFY ? OFPFC_MODIFY_STRICT
                                                    : OFPFC_DELETE_STRICT;
    struct ofputil_flow_mod local;
    struct ofputil_flow_mod* fm;
    if (parsed && parsed[i] && command != OFPFC_DELETE_STRICT) {
      fm = &parsed[i]->fm;
    } else {
      char* perr = parse_flow(&local, flows[i], command);
      if (perr) {
        error = EINVAL;
        ds_put_format(&errors, "bad flow '%s': %s", flows[i], perr);
        free(perr);
        break;
      }
      fm = &local;
    }
    fm->command = command;
    fm->modify_cookie = false;
    if (command == OFPFC_ADD) {
      fm->new_cookie = htonll(cookie);
      fm->cookie = htonll(0);
      fm->cookie_mask = htonll(0);
    } else {
      fm->cookie = htonll(cookie);
      fm->cookie_mask = OVS_BE64_MAX;
      fm->new_cookie = OVS_BE64_MAX; /* modify the actions only; never add if missing */
    }
    struct ofpbuf* msg = ofputil_encode_flow_mod(fm, protocol);
    if (fm == &local) destroy_fm(&local);
    ofpmsg_update_length(msg);
    struct ofputil_bundle_add_msg bam = {
        .bundle_id = bc.bundle_id, .flags = bc.flags, .msg = msg->data};
    append_msg(out, ofputil_encode_bundle_add(version, &bam));
    ofpbuf_delete(msg);
    if (out->size >= CHUNK) {
      error = raw_write_all(of->bulk_fd, out->data, out->size);
      opened = true;
      ofpbuf_clear(out);
    }
  }
  if (!error) {
    struct ofpbuf* b = ofputil_encode_barrier_request(version);
    barrier_xid = ((struct ofp_header*)b->data)->xid;
    append_msg(out, b);
    error = raw_write_all(of->bulk_fd, out->data, out->size);
    opened = true;
  }
  ofpbuf_delete(out);
  /* The barrier's reply comes after the replies (errors) to everything before it. */
  if (!error) error = raw_wait_xid(of, barrier_xid, &errors, NULL);
  if (!error && errors.length) error = EPROTO;

  /* A flow that did not parse before anything left: there is no bundle to discard. */
  if (of->bulk_fd >= 0 && (!error || error == EPROTO || (error == EINVAL && opened))) {
    bc.type = error ? OFPBCT_DISCARD_REQUEST : OFPBCT_COMMIT_REQUEST;
    struct ofpbuf* ctrl = ofpbuf_new(64);
    append_msg(ctrl, ofputil_encode_bundle_ctrl_request(version, &bc));
    struct ofpbuf* b = ofputil_encode_barrier_request(version);
    const ovs_be32 xid = ((struct ofp_header*)b->data)->xid;
    append_msg(ctrl, b);
    const bool committing = !error;
    int werr = raw_write_all(of->bulk_fd, ctrl->data, ctrl->size);
    ofpbuf_delete(ctrl);
    if (!werr) werr = raw_wait_xid(of, xid, &errors, NULL);
    if (committing) {
      error = werr ? werr : (errors.length ? EPROTO : 0);
    }
  }
  if (error) {
    if (error != EPROTO && error != EINVAL) raw_close(of); /* connection trouble: start over */
    int rc = set_err(err, error, "bundle of %zu flow mods not applied: %s", n,
                     errors.length ? ds_cstr(&errors) : ovs_strerror(error));
    ds_destroy(&errors);
    return rc;
  }
  ds_destroy(&errors);
  return 0; /* commit reply and the barrier after it are in: applied */
}

int cov_of_dump(cov_of* of, uint64_t cookie, uint64_t mask, char*** keys, char*** actions,
                size_t* n, char** err) {
  struct ofputil_flow_stats_request fsr;
  memset(&fsr, 0, sizeof fsr);
  fsr.aggregate = false;
  match_init_catchall(&fsr.match);
  fsr.out_port = OFPP_ANY;
  fsr.out_group = OFPG_ANY;
  fsr.table_id = 0xff;
  fsr.cookie = htonll(cookie);
  fsr.cookie_mask = htonll(mask);

  struct ofputil_flow_stats* fses = NULL;
  size_t n_fses = 0;
  int error = vconn_dump_flows(of->vconn, &fsr, of->protocol, &fses, &n_fses);
  if (error) return set_err(err, error, "flow dump failed: %s", ovs_strerror(error));

  *keys = xcalloc(n_fses ? n_fses : 1, sizeof **keys);
  *actions = xcalloc(n_fses ? n_fses : 1, sizeof **actions);
  for (size_t i = 0; i < n_fses; i++) {
    format_flow(fses[i].table_id, &fses[i].match, fses[i].priority, fses[i].ofpacts,
                fses[i].ofpacts_len, &(*keys)[i], &(*actions)[i]);
    free(CONST_CAST(struct ofpact*, fses[i].ofpacts));
  }
  free(fses);
  *n = n_fses;
  return 0;
}

int cov_of_meter_mod(cov_of* of, int op, const struct cov_meter* m, char** err) {
  struct ofputil_meter_band band;
  memset(&band, 0, sizeof band);
  band.type = OFPMBT13_DROP;
  band.rate = m->kbps;
  band.burst_size = m->burst_kbit;
  struct ofputil_meter_mod mm;
  memset(&mm, 0, sizeof mm);
  mm.command = op == COV_METER_ADD      ? OFPMC13_ADD
               : op == COV_METER_MODIFY ? OFPMC13_MODIFY
                                        : OFPMC13_DELETE;
  mm.meter.meter_id = m->id;
  if (op != COV_METER_DELETE) {
    mm.meter.flags = OFPMF13_KBPS | OFPMF13_BURST;
    mm.meter.n_bands = 1;
    mm.meter.bands = &band;
  }
  struct ofpbuf* msg = ofputil_encode_meter_mod(vconn_get_version(of->vconn), &mm);
  struct ofpbuf* reply = NULL;
  int error = vconn_transact_noreply(of->vconn, msg, &reply);
  if (error) return set_err(err, error, "meter %u: %s", m->id, ovs_strerror(error));
  if (reply) {
    struct ds s = DS_EMPTY_INITIALIZER;
    format_ofp_error(reply, &s);
    ofpbuf_delete(reply);
    error = set_err(err, EPROTO, "meter %u refused: %s", m->id, ds_cstr(&s));
    ds_destroy(&s);
    return error;
  }
  return 0;
}

int cov_of_meters(cov_of* of, struct cov_meter** out, size_t* n, char** err) {
  struct ovs_list requests, replies;
  ovs_list_init(&requests);
  struct ofpbuf* rq =
      ofputil_encode_meter_request(vconn_get_version(of->vconn), OFPUTIL_METER_CONFIG, OFPM13_ALL);
  ovs_list_push_back(&requests, &rq->list_node);
  int error = vconn_transact_multipart(of->vconn, &requests, &replies);
  if (error) return set_err(err, error, "meter dump failed: %s", ovs_strerror(error));
  size_t cap = 16, count = 0;
  struct cov_meter* v = xcalloc(cap, sizeof *v);
  struct ofpbuf bands;
  ofpbuf_init(&bands, 64);
  struct ofpbuf* reply;
  LIST_FOR_EACH(reply, list_node, &replies) {
    enum ofptype type;
    if (ofptype_decode(&type, reply->data) || type != OFPTYPE_METER_CONFIG_STATS_REPLY) {
      struct ds s = DS_EMPTY_INITIALIZER;
      format_ofp_error(reply, &s);
      error = set_err(err, EPROTO, "meter dump refused: %s", ds_cstr(&s));
      ds_destroy(&s);
      break;
    }
    struct ofputil_meter_config mc;
    while (!ofputil_decode_meter_config(reply, &mc, &bands)) {
      if (count == cap) v = x2nrealloc(v, &cap, sizeof *v);
      struct cov_meter* m = &v[count++];
      memset(m, 0, sizeof *m);
      m->id = mc.meter_id;
      m->simple = mc.n_bands == 1 && mc.bands[0].type == OFPMBT13_DROP &&
                  mc.flags == (OFPMF13_KBPS | OFPMF13_BURST);
      if (mc.n_bands) {
        m->kbps = mc.bands[0].rate;
        m->burst_kbit = mc.bands[0].burst_size;
      }
    }
  }
  ofpbuf_uninit(&bands);
  ofpbuf_list_delete(&replies);
  if (error) {
    free(v);
    return error;
  }
  *out = v;
  *n = count;
  return 0;
}

/* ---------------------------------------------------------------- OVSDB */

struct cov_db {
  struct ovsdb_idl* idl;
};

cov_db* cov_db_create(const char* remote) {
  cov_db* db = xzalloc(sizeof *db);
  db->idl = ovsdb_idl_create(remote, &ovsrec_idl_class, true, true);
  return db;
}

void cov_db_destroy(cov_db* db) {
  if (!db) return;
  ovsdb_idl_destroy(db->idl);
  free(db);
}

unsigned int cov_db_run(cov_db* db) {
  ovsdb_idl_run(db->idl);
  return ovsdb_idl_get_seqno(db->idl);
}

int cov_db_connected(cov_db* db) {
  return ovsdb_idl_is_connected(db->idl) && ovsdb_idl_has_ever_connected(db->idl);
}

void cov_db_wait(cov_db* db, int wake_fd, int timeout_ms) {
  ovsdb_idl_wait(db->idl);
  if (wake_fd >= 0) poll_fd_wait(wake_fd, POLLIN);
  if (timeout_ms >= 0) poll_timer_wait(timeout_ms);
  poll_block();
}

static const struct ovsrec_bridge* find_bridge(cov_db* db, const char* name) {
  const struct ovsrec_bridge* br;
  OVSREC_BRIDGE_FOR_EACH(br, db->idl) {
    if (!strcmp(br->name, name)) return br;
  }
  return NULL;
}

size_t cov_db_interfaces(cov_db* db, struct cov_iface* out, size_t max) {
  size_t n = 0;
  const struct ovsrec_bridge* br;
  OVSREC_BRIDGE_FOR_EACH(br, db->idl) {
    for (size_t p = 0; p < br->n_ports; p++) {
      const struct ovsrec_port* port = br->ports[p];
      for (size_t i = 0; i < port->n_interfaces; i++) {
        const struct ovsrec_interface* iface = port->interfaces[i];
        if (n < max) {
          struct cov_iface* o = &out[n];
          o->name = iface->name;
          o->type = iface->type;
          o->bridge = br->name;
          o->iface_id = smap_get_def(&iface->external_ids, "iface-id", "");
          o->remote_ip = smap_get_def(&iface->options, "remote_ip", "");
          o->ofport = iface->n_ofport ? iface->ofport[0] : -1;
          o->link_up = iface->link_state && !strcmp(iface->link_state, "up");
          o->owned = smap_get_bool(&iface->external_ids, "cutover-owned", false) ||
                     smap_get_bool(&port->external_ids, "cutover-owned", false);
          o->qos_max_rate = -1;
          o->qos_burst = 0;
          if (port->qos) {
            const struct ovsrec_qos* q = port->qos;
            if (!smap_get_bool(&q->external_ids, "cutover-owned", false)) {
              o->qos_max_rate = -2;
            } else {
              o->qos_max_rate = smap_get_ullong(&q->other_config, "max-rate", 0);
              for (size_t k = 0; k < q->n_queues; k++) {
                if (q->key_queues[k] == 0) {
                  o->qos_burst = smap_get_ullong(&q->value_queues[k]->other_config, "burst", 0);
                }
              }
            }
          }
        }
        n++;
      }
    }
  }
  return n;
}

static int commit(struct ovsdb_idl_txn* txn, const char* what, char** err) {
  enum ovsdb_idl_txn_status status = ovsdb_idl_txn_commit_block(txn);
  int rc = 0;
  if (status != TXN_SUCCESS && status != TXN_UNCHANGED) {
    const char* detail = ovsdb_idl_txn_get_error(txn);
    rc = set_err(err, EIO, "OVSDB transaction (%s) failed: %s%s%s", what,
                 ovsdb_idl_txn_status_to_string(status), detail ? ": " : "", detail ? detail : "");
  }
  ovsdb_idl_txn_destroy(txn);
  return rc;
}

int cov_db_ensure_bridge(cov_db* db, const char* bridge, const char* datapath_type, char** err) {
  const struct ovsrec_open_vswitch* ovs = ovsrec_open_vswitch_first(db->idl);
  if (!ovs) return set_err(err, EAGAIN, "OVSDB has no Open_vSwitch row yet (not connected?)");
  static const char* protocols[] = {"OpenFlow10", "OpenFlow13", "OpenFlow14", "OpenFlow15"};
  const struct ovsrec_bridge* existing = find_bridge(db, bridge);
  if (existing) {
    bool has14 = false;
    for (size_t i = 0; i < existing->n_protocols; i++) {
      if (!strcmp(existing->protocols[i], "OpenFlow14")) has14 = true;
    }
    if (has14 || existing->n_protocols == 0) return 0;
    struct ovsdb_idl_txn* txn = ovsdb_idl_txn_create(db->idl);
    ovsrec_bridge_set_protocols(existing, protocols, 4);
    return commit(txn, "enable OpenFlow 1.4", err);
  }
  struct ovsdb_idl_txn* txn = ovsdb_idl_txn_create(db->idl);
  ovsdb_idl_txn_add_comment(txn, "cutover-agent: create bridge %s", bridge);
  struct ovsrec_interface* iface = ovsrec_interface_insert(txn);
  ovsrec_interface_set_name(iface, bridge);
  ovsrec_interface_set_type(iface, "internal");
  struct ovsrec_port* port = ovsrec_port_insert(txn);
  ovsrec_port_set_name(port, bridge);
  ovsrec_port_set_interfaces(port, &iface, 1);
  struct ovsrec_bridge* br = ovsrec_bridge_insert(txn);
  ovsrec_bridge_set_name(br, bridge);
  ovsrec_bridge_set_datapath_type(br, datapath_type);
  ovsrec_bridge_set_fail_mode(br, "secure");
  ovsrec_bridge_set_protocols(br, protocols, 4);
  ovsrec_bridge_set_ports(br, &port, 1);
  ovsrec_bridge_update_external_ids_setkey(br, "cutover-owned", "true");
  ovsrec_open_vswitch_update_bridges_addvalue(ovs, br);
  return commit(txn, "create bridge", err);
}

int cov_db_add_port(cov_db* db, const char* bridge, const char* name, const char* type,
                    const char* const* options, size_t n_options, char** err) {
  const struct ovsrec_bridge* br = find_bridge(db, bridge);
  if (!br) return set_err(err, ENOENT, "bridge %s does not exist", bridge);
  struct smap opts = SMAP_INITIALIZER(&opts);
  for (size_t i = 0; i < n_options; i++) {
    const char* eq = strchr(options[i], '=');
    if (!eq) {
      smap_destroy(&opts);
      return set_err(err, EINVAL, "bad option '%s': expected key=value", options[i]);
    }
    char* k = xmemdup0(options[i], eq - options[i]);
    smap_add(&opts, k, eq + 1);
    free(k);
  }
  struct ovsdb_idl_txn* txn = ovsdb_idl_txn_create(db->idl);
  ovsdb_idl_txn_add_comment(txn, "cutover-agent: add port %s", name);
  struct ovsrec_interface* iface = ovsrec_interface_insert(txn);
  ovsrec_interface_set_name(iface, name);
  ovsrec_interface_set_type(iface, type);
  ovsrec_interface_set_options(iface, &opts);
  ovsrec_interface_update_external_ids_setkey(iface, "cutover-owned", "true");
  struct ovsrec_port* port = ovsrec_port_insert(txn);
  ovsrec_port_set_name(port, name);
  ovsrec_port_set_interfaces(port, &iface, 1);
  ovsrec_port_update_external_ids_setkey(port, "cutover-owned", "true");
  ovsrec_bridge_update_ports_addvalue(br, port);
  smap_destroy(&opts);
  return commit(txn, "add port", err);
}

static const struct ovsrec_port* find_port(cov_db* db, const char* name) {
  const struct ovsrec_port* port;
  OVSREC_PORT_FOR_EACH(port, db->idl) {
    if (!strcmp(port->name, name)) return port;
  }
  return NULL;
}

int cov_db_set_port_qos(cov_db* db, const char* name, int64_t max_rate, int64_t burst, char** err) {
  const struct ovsrec_port* port = find_port(db, name);
  if (!port) return set_err(err, ENOENT, "port %s does not exist", name);
  const struct ovsrec_qos* old = port->qos;
  if (old && !smap_get_bool(&old->external_ids, "cutover-owned", false)) {
    return set_err(err, EPERM, "port %s has a QoS that is not cutover's; leaving it alone", name);
  }
  if (!old && max_rate <= 0) return 0;
  struct ovsdb_idl_txn* txn = ovsdb_idl_txn_create(db->idl);
  ovsdb_idl_txn_add_comment(txn, "cutover-agent: %s QoS of port %s",
                            max_rate > 0 ? "set" : "remove", name);
  if (old) { /* QoS and Queue are root tables: unreferenced rows stay unless deleted */
    for (size_t k = 0; k < old->n_queues; k++) ovsrec_queue_delete(old->value_queues[k]);
    ovsrec_qos_delete(old);
  }
  if (max_rate > 0) {
    char rate[32], bits[32];
    snprintf(rate, sizeof rate, "%lld", (long long)max_rate);
    snprintf(bits, sizeof bits, "%lld", (long long)burst);
    struct ovsrec_queue* queue = ovsrec_queue_insert(txn);
    struct smap qcfg = SMAP_INITIALIZER(&qcfg);
    smap_add(&qcfg, "max-rate", rate);
    if (burst > 0) smap_add(&qcfg, "burst", bits);
    ovsrec_queue_set_other_config(queue, &qcfg);
    ovsrec_queue_update_external_ids_setkey(queue, "cutover-owned", "true");
    struct ovsrec_qos* qos = ovsrec_qos_insert(txn);
    ovsrec_qos_set_type(qos, "linux-htb");
    struct smap cfg = SMAP_INITIALIZER(&cfg);
    smap_add(&cfg, "max-rate", rate);
    ovsrec_qos_set_other_config(qos, &cfg);
    int64_t key = 0;
    ovsrec_qos_set_queues(qos, &key, &queue, 1);
    ovsrec_qos_update_external_ids_setkey(qos, "cutover-owned", "true");
    ovsrec_port_set_qos(port, qos);
    smap_destroy(&qcfg);
    smap_destroy(&cfg);
  } else {
    ovsrec_port_set_qos(port, NULL);
  }
  return commit(txn, "port QoS", err);
}

int cov_db_gc_qos(cov_db* db, char** err) {
  struct ovsdb_idl_txn* txn = NULL;
  int n = 0;
  const struct ovsrec_qos* qos;
  OVSREC_QOS_FOR_EACH(qos, db->idl) {
    if (!smap_get_bool(&qos->external_ids, "cutover-owned", false)) continue;
    bool used = false;
    const struct ovsrec_port* port;
    OVSREC_PORT_FOR_EACH(port, db->idl) {
      if (port->qos == qos) used = true;
    }
    if (used) continue;
    if (!txn) {
      txn = ovsdb_idl_txn_create(db->idl);
      ovsdb_idl_txn_add_comment(txn, "cutover-agent: delete QoS rows of ports gone");
    }
    for (size_t k = 0; k < qos->n_queues; k++) ovsrec_queue_delete(qos->value_queues[k]);
    ovsrec_qos_delete(qos);
    n++;
  }
  if (!txn) return 0;
  return commit(txn, "delete unused QoS", err) ? -1 : n;
}

int cov_db_del_port(cov_db* db, const char* bridge, const char* name, char** err) {
  const struct ovsrec_bridge* br = find_bridge(db, bridge);
  if (!br) return set_err(err, ENOENT, "bridge %s does not exist", bridge);
  for (size_t p = 0; p < br->n_ports; p++) {
    const struct ovsrec_port* port = br->ports[p];
    if (strcmp(port->name, name)) continue;
    if (!smap_get_bool(&port->external_ids, "cutover-owned", false)) {
      return set_err(err, EPERM, "port %s is not owned by cutover; leaving it alone", name);
    }
    struct ovsdb_idl_txn* txn = ovsdb_idl_txn_create(db->idl);
    ovsdb_idl_txn_add_comment(txn, "cutover-agent: delete port %s", name);
    ovsrec_bridge_update_ports_delvalue(br, port);
    return commit(txn, "delete port", err);
  }
  return 0;
}
