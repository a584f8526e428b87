/* cap.h: capture backends behind one small table of operations. A backend hands out
 * batches of frames; the frames stay valid until the next call to next() or close().
 * Backends: a pcap/pcapng file (cap_pcap.c) and live AF_PACKET TPACKET_V3 rings
 * (cap_afpacket.c).
 */
#ifndef TF_CAP_H
#define TF_CAP_H

#include <stddef.h>
#include <stdint.h>

struct cap_pkt {
	const uint8_t *data;
	uint32_t caplen;   /* bytes at data */
	uint32_t len;      /* length on the wire */
	uint64_t ts_ns;    /* Unix time, nanoseconds */
	uint32_t ifindex;  /* input interface (0 for files) */
	uint16_t vlan;     /* VLAN id the kernel took off the frame, 0 if none */
	uint8_t link;      /* enum pkt_link */
	uint8_t outgoing;  /* sent by this host (AF_PACKET PACKET_OUTGOING) */
};

struct cap_stats {
	uint64_t packets;  /* frames handed out */
	uint64_t drops;    /* frames the kernel dropped (ring full) */
	uint64_t filtered; /* frames the kernel dropped by filter, if known */
};

struct cap;

struct cap_ops {
	const char *name;
	/* Fills pkts[0..max) and returns how many (>0), 0 when nothing arrived within
	 * timeout_ms, CAP_EOF at the end of a file, or a negative errno. */
	int (*next)(struct cap *c, struct cap_pkt *pkts, int max, int timeout_ms);
	/* Cumulative statistics. */
	void (*stats)(struct cap *c, struct cap_stats *st);
	void (*close)(struct cap *c);
};

#define CAP_EOF (-4096)

struct cap {
	const struct cap_ops *ops;
};

static inline int cap_next(struct cap *c, struct cap_pkt *p, int max, int timeout_ms)
{
	return c->ops->next(c, p, max, timeout_ms);
}

static inline void cap_stats(struct cap *c, struct cap_stats *st)
{
	c->ops->stats(c, st);
}

static inline void cap_close(struct cap *c)
{
	if (c)
		c->ops->close(c);
}

/* Opens a pcap or pcapng file. filter (may be NULL) is pcap filter syntax. On failure
 * returns NULL with a message in err. */
struct cap *cap_open_pcap(const char *path, const char *filter, char *err, size_t errlen);

struct cap_afp_cfg {
	const char *const *ifaces;  /* interface names */
	int nifaces;
	const char *filter;         /* pcap syntax, NULL for none */
	uint32_t snaplen;           /* bytes kept per frame */
	uint32_t ring_bytes;        /* ring size per interface */
	int promisc;
	int fanout_id;              /* >= 0: join PACKET_FANOUT group fanout_id + i per iface */
	int fanout_members;         /* workers in each group */
	int direction;              /* CAP_DIR_* */
};

enum { CAP_DIR_BOTH = 0, CAP_DIR_IN = 1, CAP_DIR_OUT = 2 };

/* Opens one TPACKET_V3 ring per interface. NULL with a message in err on failure. */
struct cap *cap_open_afpacket(const struct cap_afp_cfg *cfg, char *err, size_t errlen);

#endif
