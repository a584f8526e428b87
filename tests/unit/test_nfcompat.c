/* test_nfcompat.c: nfdump 1.7.1's output formats. Expected strings are what nfdump
 * 1.7.1 printed for the same flows (TZ=UTC) on this machine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nfcompat.h"

/* Output captured in memory. */
struct cap {
	char *buf;
	size_t len;
	FILE *f;
};

static void cap_open(struct cap *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	assert_non_null(c->f);
}

static const char *cap_str(struct cap *c)
{
	fflush(c->f);
	return c->buf;
}

static void cap_close(struct cap *c)
{
	fclose(c->f);
	free(c->buf);
}

static void addr(uint8_t a[16], const char *s)
{
	uint8_t v4[4];
	if (inet_pton(AF_INET, s, v4) == 1)
		flowrec_addr4(a, v4);
	else
		assert_int_equal(inet_pton(AF_INET6, s, a), 1);
}

/* 2026-01-01 00:00:00 UTC in ms */
#define T0 1767225600000ull

static struct flow_rec v6flow(void)
{
	struct flow_rec r;
	memset(&r, 0, sizeof(r));
	addr(r.src, "2001:db8:108:826::c25e");
	addr(r.dst, "2001:db8:f00d:1::dabb:d713");
	addr(r.exporter, "127.0.0.1");
	r.sport = 42248;
	r.dport = 443;
	r.proto = 6;
	r.ipver = 6;
	r.tcp_flags = 0x13;
	r.packets = 2;
	r.bytes = 124;
	r.first_ms = T0 + 119;
	r.last_ms = T0 + 2795;
	r.vlan = 300;
	return r;
}

static struct flow_rec icmpflow(void)
{
	struct flow_rec r;
	memset(&r, 0, sizeof(r));
	addr(r.src, "10.11.127.144");
	addr(r.dst, "203.0.113.55");
	r.dport = 8 << 8;
	r.proto = 1;
	r.ipver = 4;
	r.packets = 1;
	r.bytes = 1076;
	r.first_ms = r.last_ms = T0 + 651;
	return r;
}

static void test_number(void **state)
{
	(void)state;
	char b[NFC_NUM_LEN];
	assert_string_equal(nfc_number(999999, 0, b), "999999");
	assert_string_equal(nfc_number(1000000, 0, b), "1.0 M");
	assert_string_equal(nfc_number(12506182, 0, b), "12.5 M");
	assert_string_equal(nfc_number(12506182, 1, b), "12506182");
	assert_string_equal(nfc_number(2114450000ull, 0, b), "2.1 G");
	assert_string_equal(nfc_number(3000000000000ull, 0, b), "3.0 T");
}

static void test_proto_addr_duration(void **state)
{
	(void)state;
	char b[64];
	assert_string_equal(nfc_proto(6, 0, b), "TCP");
	assert_string_equal(nfc_proto(58, 0, b), "ICMP6");
	assert_string_equal(nfc_proto(0, 0, b), "0");
	assert_string_equal(nfc_proto(6, 1, b), "6    ");
	assert_string_equal(nfc_proto(200, 0, b), "200  ");
	uint8_t a[16];
	addr(a, "2001:db8:108:826::c25e");
	assert_string_equal(nfc_addr(a, 1, 1, b), "2001:db..6::c25e");
	assert_string_equal(nfc_addr(a, 1, 0, b), "2001:db8:108:826::c25e");
	addr(a, "192.0.2.141");
	assert_string_equal(nfc_addr(a, 0, 1, b), "192.0.2.141");
	memset(a, 0, 16);
	assert_string_equal(nfc_addr(a, 1, 1, b), "::");
	assert_string_equal(nfc_addr(a, 0, 1, b), "0.0.0.0");
	assert_string_equal(nfc_duration(47.09, 0, b), "    00:00:47.090");
	assert_string_equal(nfc_duration(0, 0, b), "    00:00:00.000");
	assert_string_equal(nfc_duration(3723.5, 0, b), "    01:02:03.500");
	assert_string_equal(nfc_duration(2.676, 1, b), "           2.676");
}

static void test_fmt(void **state)
{
	(void)state;
	char err[128];
	struct cap c;
	struct flow_rec r = v6flow();
	struct nfc_fmt *f = nfc_fmt_new("%sap,%dap,%ibyt,%bps", 0, err, sizeof(err));
	assert_non_null(f);
	cap_open(&c);
	assert_int_equal(nfc_fmt_header(f, c.f), 0);
	assert_int_equal(nfc_fmt_row(f, &r, 1, c.f), 0);
	assert_string_equal(cap_str(&c),
			    "     Src IP Addr:Port       Dst IP Addr:Port   In Byte      bps\n"
			    "2001:db..6::c25e.42248,2001:db..bb:d713.443  ,     124,     370\n");
	cap_close(&c);
	nfc_fmt_free(f);

	f = nfc_fmt_new(NFC_FMT_LINE, 0, err, sizeof(err));
	assert_non_null(f);
	r = icmpflow();
	cap_open(&c);
	nfc_fmt_header(f, c.f);
	nfc_fmt_row(f, &r, 1, c.f);
	assert_string_equal(cap_str(&c),
			    "Date first seen             Duration     Proto      Src IP Addr:Port  "
			    "        Dst IP Addr:Port   Packets    Bytes Flows\n"
			    "2026-01-01 00:00:00.651     00:00:00.000 ICMP     10.11.127.144:0     ->"
			    "     203.0.113.55:8.0          1     1076     1\n");
	cap_close(&c);
	nfc_fmt_free(f);

	/* scaled numbers and every remaining token, with -N */
	f = nfc_fmt_new("%ts|%te|%td|%pr|%sa|%da|%sp|%dp|%pkt|%byt|%fl|%pps|%bpp|%flg|%tos|%in|%out",
			1, err, sizeof(err));
	assert_non_null(f);
	r = v6flow();
	r.bytes = 12506182;
	r.tos = 184;
	r.in_if = 3;
	cap_open(&c);
	nfc_fmt_row(f, &r, 7, c.f);
	assert_string_equal(cap_str(&c),
			    "2026-01-01 00:00:00.119|2026-01-01 00:00:02.795|           2.676|6    |"
			    "2001:db..6::c25e|2001:db..bb:d713| 42248|   443|       2|12506182|    7|"
			    "       0|6253091|...A..SF|184|     3|     0\n");
	cap_close(&c);
	nfc_fmt_free(f);

	assert_null(nfc_fmt_new("%sa %nosuch", 0, err, sizeof(err)));
	assert_non_null(strstr(err, "%nosuch"));
}

/* -A's own format: its keys between the times and the counters, as nfdump builds it. */
static void test_aggr_fmt(void **state)
{
	(void)state;
	char buf[256];
	struct query_key k[3];
	memset(k, 0, sizeof(k));
	k[0].field = QF_SRCIP;
	k[1].field = QF_DSTPORT;
	assert_int_equal(nfc_aggr_fmt(k, 2, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "%ts %td  %sa %dp  %pkt %byt %bps %bpp %fl");
	k[0].field = QF_SRCNET;         /* srcip4/24: the masked address */
	k[0].mask4 = 24;
	k[0].mask6 = 128;
	k[1].field = QF_DSTNET;         /* dstnet: the flow's own mask, shown */
	k[1].mask4 = QUERY_MASK_FLOW;
	k[2].field = QF_EXPORTER;
	assert_int_equal(nfc_aggr_fmt(k, 3, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "%ts %td  %sa %dn %ra  %pkt %byt %bps %bpp %fl");
	assert_int_equal(nfc_aggr_fmt(k, 3, buf, 20), -1);     /* too small */
	k[0].field = QF_IP;             /* not an -A key */
	assert_int_equal(nfc_aggr_fmt(k, 1, buf, sizeof(buf)), -1);
	/* every element it names is one the format parser knows */
	char err[128];
	assert_int_equal(nfc_aggr_fmt(k + 1, 2, buf, sizeof(buf)), 0);
	struct nfc_fmt *f = nfc_fmt_new(buf, 0, err, sizeof(err));
	assert_non_null(f);
	nfc_fmt_free(f);
}

/* -o pipe: a flow's address words in order; a statistic's IPv6 address in the
 * byte-swapped words nfdump 1.7.1 prints (taken from its output). */
static void test_pipe(void **state)
{
	(void)state;
	struct cap c;
	struct query_table t;
	struct query_row row;
	memset(&t, 0, sizeof(t));
	memset(&row, 0, sizeof(row));
	addr(row.f.src, "2001:db8:f00d:2::14de:29b4");
	addr(row.f.dst, "2001:db8::1");
	row.f.first_ms = 1767225611720;
	row.f.last_ms = 1767225640091;
	row.f.proto = 6;
	row.f.sport = 443;
	row.f.tcp_flags = 0x1b;
	row.f.packets = 27;
	row.f.bytes = 32950;
	row.flows = 1;
	t.req.kind = QK_STAT;
	t.req.nkey = 1;
	t.req.key[0].field = QF_SRCIP;
	cap_open(&c);
	assert_int_equal(nfc_pipe_flow_row(&row.f, c.f), 0);
	assert_int_equal(nfc_pipe_stat_row(&t, &row, c.f), 0);
	t.req.key[0].field = QF_SRCPORT;
	assert_int_equal(nfc_pipe_stat_row(&t, &row, c.f), 0);
	assert_string_equal(cap_str(&c),
			    "10|1767225611720|1767225640091|6|536939960|4027383810|0|350103988|443|"
			    "536939960|0|0|1|0|0|0|0|0|27|0|27|32950\n"
			    "10|1767225611720|1767225640091|0|33558000|3087860000|3022642708|0|1|27|"
			    "32950|0|9291|1220\n"
			    "0|1767225611720|1767225640091|0|443|1|27|32950|0|9291|1220\n");
	cap_close(&c);
}

static void test_csv_flow(void **state)
{
	(void)state;
	struct cap c;
	struct nfc_csv st = { 0 };
	struct flow_rec r = v6flow();
	cap_open(&c);
	nfc_csv_flow_header(c.f);
	assert_int_equal(nfc_csv_flow_row(&st, &r, c.f), 0);
	const char *s = cap_str(&c);
	const char *line = strchr(s, '\n') + 1;
	assert_int_equal(strncmp(s, "ts,te,td,sa,da,sp,dp,pr,flg,", 28), 0);
	assert_string_equal(line,
			    "2026-01-01 00:00:00,2026-01-01 00:00:02,2.676,2001:db8:108:826::c25e,"
			    "2001:db8:f00d:1::dabb:d713,42248,443,TCP,...A..SF,0,0,2,124,0,0,0,0,0,0,"
			    "0,0,0,0,::,0.0.0.0,300,0,00:00:00:00:00:00,00:00:00:00:00:00,"
			    "00:00:00:00:00:00,00:00:00:00:00:00,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,"
			    "0-0-0,0-0-0,0-0-0,0-0-0,    0.000,    0.000,    0.000,127.0.0.1,0/0,1,"
			    "1970-01-01 00:00:00.000\n");
	/* 48 columns in header and row */
	int commas = 0;
	for (const char *p = line; *p; p++)
		commas += *p == ',';
	assert_int_equal(commas, 47);
	cap_close(&c);
}

static void test_csv_stat_summary(void **state)
{
	(void)state;
	struct cap c;
	struct query_table t;
	struct query_row row;
	memset(&t, 0, sizeof(t));
	memset(&row, 0, sizeof(row));
	t.req.kind = QK_STAT;
	t.req.order = QO_BYTES;
	t.req.nkey = 1;
	t.req.key[0].field = QF_SRCIP;
	t.flows = 2054;
	t.packets = 20000;
	t.bytes = 12506182;
	addr(row.f.src, "172.30.84.85");
	row.f.first_ms = T0 + 13768;
	row.f.last_ms = T0 + 42698;
	row.f.packets = 290;
	row.f.bytes = 373589;
	row.flows = 1;
	cap_open(&c);
	nfc_csv_stat_header(QO_BYTES, c.f);
	assert_int_equal(nfc_csv_stat_row(&t, &row, 0, c.f), 0);
	nfc_csv_stat_header(QO_FLOWS, c.f);
	assert_string_equal(cap_str(&c),
			    "ts,te,td,pr,val,fl,flP,pkt,pktP,byt,bytP,pps,bps,bpp\n"
			    "2026-01-01 00:00:13,2026-01-01 00:00:42,28.930,any,172.30.84.85,1,0.0,"
			    "290,1.4,373589,3.0,10,103308,1288\n"
			    "ts,te,td,pr,val,fl,flP,ipkt,ipktP,ibyt,ibytP,ipps,ibps,ibpp\n");
	cap_close(&c);

	struct query_summary s;
	memset(&s, 0, sizeof(s));
	s.flows = 2054;
	s.packets = 20000;
	s.bytes = 12506182;
	s.first_ms = T0 + 18;
	s.last_ms = T0 + 47335;
	cap_open(&c);
	nfc_csv_summary(&s, c.f);
	assert_string_equal(cap_str(&c), "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n"
			    "2054,12506182,20000,2114450,422,625\n");
	cap_close(&c);

	struct nfc_run run = { .win_first_ms = T0, .win_last_ms = T0 + 47335 };
	s.flows_scanned = 2054;
	cap_open(&c);
	nfc_text_summary(&s, &run, 0, c.f);
	const char *txt = cap_str(&c);
	const char *want = "Summary: total flows: 2054, total bytes: 12.5 M, total "
				 "packets: 20000, avg bps: 2.1 M, avg pps: 422, avg bpp: 625\n"
				 "Time window: 2026-01-01 00:00:00 - 2026-01-01 00:00:47\n"
				 "Total flows processed: 2054, passed: 2054, Blocks skipped: 0, "
				 "Bytes read: 0\nSys: ";
	char head[512];
	snprintf(head, sizeof(head), "%.*s", (int)strlen(want), txt);
	assert_string_equal(head, want);
	cap_close(&c);
}

int main(void)
{
	/* nfdump prints local time; the expectations are in UTC */
	setenv("TZ", "UTC", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_number),
		cmocka_unit_test(test_proto_addr_duration),
		cmocka_unit_test(test_fmt),
		cmocka_unit_test(test_aggr_fmt),
		cmocka_unit_test(test_pipe),
		cmocka_unit_test(test_csv_flow),
		cmocka_unit_test(test_csv_stat_summary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
