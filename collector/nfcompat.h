/* nfcompat.h: nfdump 1.7.1's text output, byte for byte, for tapflow-nfdump. Owns the
 * renderers of query results (query.h) in the formats monitoring consoles parse:
 *   - the flow CSV (-o csv listing, -A, -s record): nfdump's 48-column line; columns
 *     tapflow does not record print as nfdump prints them when unset (0, "0-0-0", MACs
 *     of zeros), the received time "tr" as the zero time (not recorded);
 *   - the statistic CSV (-o csv -s ELEM/ORDER) and the CSV summary block;
 *   - "fmt:" formats (%ts %te %td %pr %sap %dap %sa %da %sp %dp %pkt %ipkt %byt %ibyt
 *     %fl %bps %pps %bpp %flg %tos %in %out) with nfdump's header and column widths,
 *     and "line", which is one of them;
 *   - number scaling ("12.5 M", plain with -N), durations, protocol names, condensed
 *     IPv6 addresses, and the text summary block.
 * Times are local time (TZ), as nfdump prints them. Nothing here reads the store.
 */
#ifndef TF_NFCOMPAT_H
#define TF_NFCOMPAT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "flowrec.h"
#include "query.h"

#define NFC_NUM_LEN 32
#define NFC_FMT_LINE "%ts %td %pr %sap -> %dap %pkt %byt %fl"
/* nfdump 1.7's -o long and -o extended */
#define NFC_FMT_LONG "%ts %td %pr %sap -> %dap %flg %tos %pkt %byt %fl"
#define NFC_FMT_EXTENDED "%ts %td %pr %sap -> %dap %flg %tos %pkt %byt %pps %bps %bpp %fl"

struct nfc_fmt;

/* Writes n as nfdump's format_number: plain digits when plain or below 1 M, else
 * "%.1f M" / "G" / "T" (powers of 1000). Returns buf (NFC_NUM_LEN bytes). */
char *nfc_number(uint64_t n, int plain, char *buf);

/* nfdump's name of an IP protocol ("TCP", "ICMP6", "0" for none); the number ("%-5u")
 * when plain or past its table. Returns buf (8 bytes) or a constant. */
const char *nfc_proto(uint8_t proto, int plain, char *buf);

/* Writes the address at a (16 bytes, IPv4 v4-mapped) as nfdump does: v6 when is6 (an
 * all-zero address is then "::"), condensed to 16 characters when condense. Returns buf
 * (at least 46 bytes). */
char *nfc_addr(const uint8_t a[16], int is6, int condense, char *buf);

/* nfdump's duration: "    hh:mm:ss.mmm" (or "%2dd hh:mm:ss.mmm"), "%16.3f" seconds when
 * plain. Returns buf (32 bytes). */
char *nfc_duration(double secs, int plain, char *buf);

/* Whether nfdump would treat r as an IPv6 flow: ipver 6, or a non-zero address that is
 * not v4-mapped (aggregated rows carry only their key fields). */
int nfc_is6(const struct flow_rec *r);

/* Compiles a format ("fmt:" stripped) for rows; plain as -N. NULL with a message in
 * err for an unknown token or on allocation failure. Free with nfc_fmt_free(). */
struct nfc_fmt *nfc_fmt_new(const char *fmt, int plain, char *err, size_t errlen);
/* The format nfdump prints -A groups in when no -o is given: "%ts %td  " then each
 * key's element, then "  %pkt %byt %bps %bpp %fl". 0, or -1 for a key without one. */
int nfc_aggr_fmt(const struct query_key *k, unsigned n, char *buf, size_t len);

/* nfdump -o pipe: a flow (or group) as af|first|last|proto|4 source address words|
 * sport|4 destination words|dport|src AS|dst AS|in|out|flags|tos|packets|bytes, and a
 * statistic's row (no header, no summary: nfdump prints none in this mode). */
int nfc_pipe_flow_row(const struct flow_rec *r, FILE *out);
int nfc_pipe_stat_row(const struct query_table *t, const struct query_row *r, FILE *out);
void nfc_fmt_free(struct nfc_fmt *f);
/* Writes the header line (literal text turned into blanks, as nfdump). 0 or -EIO. */
int nfc_fmt_header(const struct nfc_fmt *f, FILE *out);
/* Writes row r (flows: how many flows it stands for). 0 or -EIO. */
int nfc_fmt_row(const struct nfc_fmt *f, const struct flow_rec *r, uint64_t flows, FILE *out);

/* Per-run state of the flow CSV: nfdump's exporter ids (exid), given in order of first
 * appearance. Zero-initialize; no heap memory. */
#define NFC_MAX_EXPORTERS 64
struct nfc_csv {
	unsigned nexp;
	uint8_t exp[NFC_MAX_EXPORTERS][16];
};
void nfc_csv_flow_header(FILE *out);
/* One flow or aggregated row as nfdump's CSV line. 0 or -EIO. */
int nfc_csv_flow_row(struct nfc_csv *st, const struct flow_rec *r, FILE *out);

/* The statistic CSV: header for a table ordered by order (nfdump 1.7.1 names the
 * counters ipkt/ibyt... when the order is flows), and one row of table t (plain: -N,
 * which prints the protocol as a number). */
void nfc_csv_stat_header(int order, FILE *out);
int nfc_csv_stat_row(const struct query_table *t, const struct query_row *r, int plain,
		     FILE *out);

/* The statistic as nfdump prints it without -o csv: "Top N ... ordered by ...:" and
 * the column header (both left out when quiet), then rows; plain as -N. */
int nfc_stat_text_header(const struct query_table *t, FILE *out);
int nfc_stat_text_row(const struct query_table *t, const struct query_row *r, int plain,
		      FILE *out);

/* "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n..." over s. */
int nfc_csv_summary(const struct query_summary *s, FILE *out);

/* What the text summary's last lines report that is not in the query summary. */
struct nfc_run {
	uint64_t win_first_ms, win_last_ms;     /* "Time window": the store's span */
	uint64_t bytes_read;
	double sys_s, user_s, wall_s;
};
/* The four summary lines after a text listing: totals (scaled unless plain), time
 * window, flows processed/passed, run times. 0 or -EIO. */
int nfc_text_summary(const struct query_summary *s, const struct nfc_run *run, int plain,
		     FILE *out);

#endif
