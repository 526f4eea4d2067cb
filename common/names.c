/* names.c: the one place that decides what a user name may be. */
#include "common/common.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int name_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
	       c == '+' || c == '-';
}

int mr_user_name_valid(const char *name)
{
	size_t i;

	if (name == NULL || name[0] == '\0')
		return 0;
	/* The first byte keeps names from being ".", ".." or an option. */
	if (!((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z') ||
	      (name[0] >= '0' && name[0] <= '9')))
		return 0;
	for (i = 0; name[i] != '\0'; i++) {
		if (i >= MR_USER_NAME_MAX)
			return 0;
		if (!name_char_ok((unsigned char)name[i]))
			return 0;
	}
	return 1;
}

void mr_user_name_suffixed(const char *name, const char *suffix, char *buf)
{
	size_t len = strlen(name), slen = strlen(suffix), keep;
	uint64_t h = 14695981039346656037ULL;
	size_t i;

	if (len + slen <= MR_USER_NAME_MAX) {
		memcpy(buf, name, len);
		memcpy(buf + len, suffix, slen + 1);
		return;
	}
	for (i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ULL;
	}
	keep = MR_USER_NAME_MAX - slen - 17;
	memcpy(buf, name, keep);
	snprintf(buf + keep, MR_USER_NAME_MAX + 1 - keep, "~%016llx%s", (unsigned long long)h,
		 suffix);
}
