/* addr.c: see addr.h. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "addr.h"
#include "flowrec.h"

char *addr_str(const uint8_t a[16], char *buf, size_t len)
{
	if (flowrec_is4(a))
		inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a, buf, (socklen_t)len);
	return buf;
}
