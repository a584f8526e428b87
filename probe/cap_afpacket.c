/* cap_afpacket.c: live capture over AF_PACKET TPACKET_V3 mmap rings, one ring per
 * interface. The kernel fills blocks of frames; we hand them out in place (no copy)
 * and give a block back once every frame in it has been consumed. A pcap-syntax filter
 * is compiled by libpcap and attached in the kernel, which also truncates each frame to
 * the snap length so headers are all that crosses into the ring.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cap.h"
#include "pkt.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

#define AFP_BLOCK_SIZE (1u << 20)
#define AFP_FRAME_SIZE 2048u
#define AFP_BLOCK_TOV_MS 50

struct afp_ring {
	int fd;
	uint8_t *map;
	size_t map_len;
	uint32_t block_nr;
	uint32_t cur;          /* block we read next */
	uint32_t ifindex;
	uint8_t link;
	/* block being handed out */
	struct tpacket_block_desc *blk;
	uint32_t left;         /* frames of blk not yet handed out */
	struct tpacket3_hdr *ppd;
};

struct cap_afp {
	struct cap c;
	struct afp_ring *rings;
	struct pollfd *pfds;
	int nrings;
	int rr;                /* ring to look at first: round robin for fairness */
	int direction;
	uint64_t packets;
	uint64_t drops;
	struct afp_ring *held; /* ring whose finished block goes back on the next call */
};

static struct tpacket_block_desc *ring_block(struct afp_ring *r, uint32_t i)
{
	return (struct tpacket_block_desc *)(r->map + (size_t)i * AFP_BLOCK_SIZE);
}

/* Gives the block just consumed back to the kernel. */
static void ring_release(struct afp_ring *r)
{
	if (r->blk && r->left == 0) {
		__atomic_store_n(&r->blk->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		r->blk = NULL;
		r->cur = (r->cur + 1) % r->block_nr;
	}
}

/* Takes the next block from the kernel if it is ready. */
static int ring_acquire(struct afp_ring *r)
{
	if (r->blk)
		return 1;
	struct tpacket_block_desc *b = ring_block(r, r->cur);
	if (!(__atomic_load_n(&b->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER))
		return 0;
	r->blk = b;
	r->left = b->hdr.bh1.num_pkts;
	r->ppd = (struct tpacket3_hdr *)((uint8_t *)b + b->hdr.bh1.offset_to_first_pkt);
	if (r->left == 0) {
		ring_release(r);
		return 0;
	}
	return 1;
}

static int ring_take(struct cap_afp *a, struct afp_ring *r, struct cap_pkt *pkts, int max)
{
	int n = 0;
	while (n < max && r->left > 0) {
		struct tpacket3_hdr *h = r->ppd;
		const struct sockaddr_ll *sll = (const struct sockaddr_ll *)
			((uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
		int out = sll->sll_pkttype == PACKET_OUTGOING;
		r->left--;
		r->ppd = (struct tpacket3_hdr *)((uint8_t *)h + h->tp_next_offset);
		if ((a->direction == CAP_DIR_IN && out) || (a->direction == CAP_DIR_OUT && !out))
			continue;
		struct cap_pkt *p = &pkts[n++];
		p->data = (const uint8_t *)h + h->tp_mac;
		p->caplen = h->tp_snaplen;
		p->len = h->tp_len;
		p->ts_ns = (uint64_t)h->tp_sec * 1000000000u + h->tp_nsec;
		p->ifindex = r->ifindex;
		p->vlan = (h->tp_status & TP_STATUS_VLAN_VALID) ? (h->hv1.tp_vlan_tci & 0x0fff) : 0;
		p->link = r->link;
		p->outgoing = (uint8_t)out;
	}
	return n;
}

static int afp_next(struct cap *c, struct cap_pkt *pkts, int max, int timeout_ms)
{
	struct cap_afp *a = (struct cap_afp *)c;
	if (a->held) {
		ring_release(a->held);
		a->held = NULL;
	}
	for (int attempt = 0; attempt < 2; attempt++) {
		for (int k = 0; k < a->nrings; k++) {
			struct afp_ring *r = &a->rings[(a->rr + k) % a->nrings];
			while (ring_acquire(r)) {
				int n = ring_take(a, r, pkts, max);
				if (r->left == 0) {
					if (n == 0) {
						ring_release(r);
						continue;
					}
					a->held = r; /* frames point into the block: keep it */
				}
				if (n > 0) {
					a->rr = (int)((r - a->rings) + 1) % a->nrings;
					a->packets += (uint64_t)n;
					return n;
				}
			}
		}
		if (attempt == 1 || timeout_ms == 0)
			break;
		for (int k = 0; k < a->nrings; k++)
			a->pfds[k].revents = 0;
		int pr = poll(a->pfds, (nfds_t)a->nrings, timeout_ms);
		if (pr < 0)
			return errno == EINTR ? 0 : -errno;
		if (pr == 0)
			return 0;
		for (int k = 0; k < a->nrings; k++)
			if (a->pfds[k].revents & (POLLERR | POLLNVAL))
				return -ENETDOWN;
	}
	return 0;
}

static void afp_stats(struct cap *c, struct cap_stats *st)
{
	struct cap_afp *a = (struct cap_afp *)c;
	for (int i = 0; i < a->nrings; i++) {
		struct tpacket_stats_v3 s;
		socklen_t sl = sizeof(s);
		/* The kernel resets these counters on every read: accumulate. */
		if (getsockopt(a->rings[i].fd, SOL_PACKET, PACKET_STATISTICS, &s, &sl) == 0)
			a->drops += s.tp_drops;
	}
	st->packets = a->packets;
	st->drops = a->drops;
	st->filtered = 0;
}

static void afp_close(struct cap *c)
{
	struct cap_afp *a = (struct cap_afp *)c;
	for (int i = 0; i < a->nrings; i++) {
		if (a->rings[i].map)
			munmap(a->rings[i].map, a->rings[i].map_len);
		if (a->rings[i].fd >= 0)
			close(a->rings[i].fd);
	}
	free(a->rings);
	free(a->pfds);
	free(a);
}

static const struct cap_ops afp_ops = {
	.name = "afpacket",
	.next = afp_next,
	.stats = afp_stats,
	.close = afp_close,
};

/* Compiles filter (or none) for this link and attaches it; the accept value is the
 * snap length, so the kernel truncates frames for us. */
static int attach_filter(int fd, int dlt, const char *filter, uint32_t snaplen,
			 char *err, size_t errlen)
{
	struct sock_filter ret_snap = BPF_STMT(BPF_RET | BPF_K, snaplen);
	struct sock_fprog fprog = { .len = 1, .filter = &ret_snap };
	struct bpf_program prog = { 0, NULL };
	pcap_t *dead = NULL;
	int rc = 0;

	if (filter && *filter) {
		dead = pcap_open_dead(dlt, (int)snaplen);
		if (!dead) {
			snprintf(err, errlen, "filter: out of memory");
			return -ENOMEM;
		}
		if (pcap_compile(dead, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
			snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(dead));
			pcap_close(dead);
			return -EINVAL;
		}
		/* libpcap's bpf_insn and the kernel's sock_filter share one layout. */
		fprog.len = (unsigned short)prog.bf_len;
		fprog.filter = (struct sock_filter *)(void *)prog.bf_insns;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "attach filter: %s", strerror(errno));
	}
	if (dead) {
		pcap_freecode(&prog);
		pcap_close(dead);
	}
	return rc;
}

/* Fanout by address pair: XOR of source and destination address words, folded, modulo
 * the workers. Symmetric, so both directions of a flow meet in one worker; ports are
 * left out so every fragment of a datagram (only the first has ports) goes with its
 * flow's other packets; the kernel's own flow hash uses ports and would split them.
 * Loads are relative to the network header; a QinQ inner tag is stepped over. */
struct cbpf {
	struct sock_filter f[64];
	unsigned n;
};

static unsigned emit(struct cbpf *p, uint16_t code, uint32_t k)
{
	p->f[p->n] = (struct sock_filter){ code, 0, 0, k };
	return p->n++;
}

/* Points the true branch of the jump at pc to target (the next instruction emitted). */
static void land(struct cbpf *p, unsigned pc, int on_true)
{
	uint8_t off = (uint8_t)(p->n - pc - 1);
	if (on_true)
		p->f[pc].jt = off;
	else
		p->f[pc].jf = off;
}

static int attach_fanout_prog(int fd, int members)
{
	struct cbpf p = { .n = 0 };
	const uint32_t net = (uint32_t)SKF_NET_OFF;
	emit(&p, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_PROTOCOL));
	emit(&p, BPF_LDX | BPF_IMM, 0);
	unsigned j_q = emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0x8100);
	unsigned j_ad = emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0x88a8);
	unsigned j_untagged = emit(&p, BPF_JMP | BPF_JA, 0);
	land(&p, j_q, 1);
	land(&p, j_ad, 1);
	emit(&p, BPF_LDX | BPF_IMM, 4); /* headers sit behind the inner tag */
	emit(&p, BPF_LD | BPF_H | BPF_ABS, net + 2);
	p.f[j_untagged].k = p.n - j_untagged - 1;
	unsigned j_v4 = emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0x0800);
	unsigned j_v6 = emit(&p, BPF_JMP | BPF_JEQ | BPF_K, 0x86dd);
	emit(&p, BPF_RET | BPF_K, 0);
	land(&p, j_v4, 1);
	emit(&p, BPF_LD | BPF_W | BPF_IND, net + 12);
	emit(&p, BPF_ST, 0);
	emit(&p, BPF_LD | BPF_W | BPF_IND, net + 16);
	emit(&p, BPF_LDX | BPF_MEM, 0);
	emit(&p, BPF_ALU | BPF_XOR | BPF_X, 0);
	unsigned j_fold = emit(&p, BPF_JMP | BPF_JA, 0);
	land(&p, j_v6, 1);
	for (uint32_t i = 0; i < 8; i++) {
		emit(&p, BPF_LD | BPF_W | BPF_IND, net + 8 + 4 * i);
		emit(&p, BPF_ST, i);
	}
	emit(&p, BPF_LD | BPF_MEM, 0);
	for (uint32_t i = 1; i < 8; i++) {
		emit(&p, BPF_LDX | BPF_MEM, i);
		emit(&p, BPF_ALU | BPF_XOR | BPF_X, 0);
	}
	p.f[j_fold].k = p.n - j_fold - 1;
	/* fold the 32 bits so low and high address bits all count */
	for (uint32_t sh = 16; sh >= 8; sh /= 2) {
		emit(&p, BPF_ST, 15);
		emit(&p, BPF_ALU | BPF_RSH | BPF_K, sh);
		emit(&p, BPF_LDX | BPF_MEM, 15);
		emit(&p, BPF_ALU | BPF_XOR | BPF_X, 0);
	}
	emit(&p, BPF_ALU | BPF_MOD | BPF_K, (uint32_t)members);
	emit(&p, BPF_RET | BPF_A, 0);
	struct sock_fprog fp = { .len = (unsigned short)p.n, .filter = p.f };
	return setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof(fp)) < 0 ? -errno : 0;
}

static int ring_open(struct afp_ring *r, const char *ifname, const struct cap_afp_cfg *cfg,
		     int idx, char *err, size_t errlen)
{
	int e;
	r->fd = -1;
	if (strlen(ifname) >= IFNAMSIZ) {
		snprintf(err, errlen, "interface '%s': name too long", ifname);
		return -EINVAL;
	}
	unsigned ifindex = if_nametoindex(ifname);
	if (ifindex == 0) {
		snprintf(err, errlen, "interface '%s': %s", ifname, strerror(errno));
		return -ENODEV;
	}
	r->ifindex = ifindex;

	/* Ethernet-like devices give frames; others (tun, wireguard, ppp) give IP. */
	int probe = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	int hw = ARPHRD_ETHER;
	if (probe >= 0 && ioctl(probe, SIOCGIFHWADDR, &ifr) == 0)
		hw = ifr.ifr_hwaddr.sa_family;
	if (probe >= 0)
		close(probe);
	int eth = hw == ARPHRD_ETHER || hw == ARPHRD_LOOPBACK;
	r->link = eth ? PKT_LINK_ETH : PKT_LINK_RAW;

	/* Protocol 0: receive nothing until the filter and ring are in place and we bind. */
	r->fd = socket(AF_PACKET, eth ? SOCK_RAW : SOCK_DGRAM, 0);
	if (r->fd < 0) {
		e = errno;
		snprintf(err, errlen, "interface '%s': AF_PACKET socket: %s%s", ifname,
			 strerror(e), e == EPERM ? " (needs root or CAP_NET_RAW)" : "");
		return -e;
	}
	int v = TPACKET_V3;
	if (setsockopt(r->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)) < 0) {
		e = errno;
		snprintf(err, errlen, "interface '%s': TPACKET_V3: %s", ifname, strerror(e));
		return -e;
	}
	e = attach_filter(r->fd, eth ? DLT_EN10MB : DLT_RAW, cfg->filter, cfg->snaplen, err,
			  errlen);
	if (e < 0)
		return e;
	if (cfg->direction == CAP_DIR_IN) {
		int one = 1;
		/* Kernel 4.20+; older ones fall back to the check in ring_take. */
		(void)setsockopt(r->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
	}

	struct tpacket_req3 req;
	memset(&req, 0, sizeof(req));
	r->block_nr = cfg->ring_bytes / AFP_BLOCK_SIZE;
	if (r->block_nr < 2)
		r->block_nr = 2;
	req.tp_block_size = AFP_BLOCK_SIZE;
	req.tp_block_nr = r->block_nr;
	req.tp_frame_size = AFP_FRAME_SIZE;
	req.tp_frame_nr = (AFP_BLOCK_SIZE / AFP_FRAME_SIZE) * r->block_nr;
	req.tp_retire_blk_tov = AFP_BLOCK_TOV_MS;
	if (setsockopt(r->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)) < 0) {
		e = errno;
		snprintf(err, errlen, "interface '%s': PACKET_RX_RING (%u MiB): %s", ifname,
			 r->block_nr, strerror(e));
		return -e;
	}
	r->map_len = (size_t)r->block_nr * AFP_BLOCK_SIZE;
	void *m = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED,
		       r->fd, 0);
	if (m == MAP_FAILED) /* MAP_LOCKED needs memlock rlimit; fine without */
		m = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (m == MAP_FAILED) {
		e = errno;
		snprintf(err, errlen, "interface '%s': mmap ring: %s", ifname, strerror(e));
		return -e;
	}
	r->map = m;

	struct sockaddr_ll sll;
	memset(&sll, 0, sizeof(sll));
	sll.sll_family = AF_PACKET;
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)ifindex;
	if (bind(r->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
		e = errno;
		snprintf(err, errlen, "interface '%s': bind: %s", ifname, strerror(e));
		return -e;
	}
	if (cfg->promisc) {
		struct packet_mreq mr;
		memset(&mr, 0, sizeof(mr));
		mr.mr_ifindex = (int)ifindex;
		mr.mr_type = PACKET_MR_PROMISC;
		if (setsockopt(r->fd, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0) {
			e = errno;
			snprintf(err, errlen, "interface '%s': promiscuous mode: %s", ifname,
				 strerror(e));
			return -e;
		}
	}
	if (cfg->fanout_id >= 0) {
		int arg = ((cfg->fanout_id + idx) & 0xffff) | (PACKET_FANOUT_CBPF << 16);
		if (setsockopt(r->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)) < 0 ||
		    (e = attach_fanout_prog(r->fd, cfg->fanout_members)) < 0) {
			e = errno;
			snprintf(err, errlen, "interface '%s': PACKET_FANOUT: %s", ifname,
				 strerror(e));
			return -e;
		}
	}
	return 0;
}

struct cap *cap_open_afpacket(const struct cap_afp_cfg *cfg, char *err, size_t errlen)
{
	struct cap_afp *a = calloc(1, sizeof(*a));
	if (!a || cfg->nifaces < 1) {
		snprintf(err, errlen, a ? "no interface given" : "out of memory");
		free(a);
		return NULL;
	}
	a->c.ops = &afp_ops;
	a->direction = cfg->direction;
	a->rings = calloc((size_t)cfg->nifaces, sizeof(*a->rings));
	a->pfds = calloc((size_t)cfg->nifaces, sizeof(*a->pfds));
	if (!a->rings || !a->pfds) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 0; i < cfg->nifaces; i++) {
		a->nrings = i + 1;
		if (ring_open(&a->rings[i], cfg->ifaces[i], cfg, i, err, errlen) < 0)
			goto fail;
		a->pfds[i].fd = a->rings[i].fd;
		a->pfds[i].events = POLLIN | POLLRDNORM | POLLERR;
	}
	return &a->c;
fail:
	afp_close(&a->c);
	return NULL;
}
