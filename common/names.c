/* names.c: the one place that decides what a user name may be. */
#include "common/common.h"

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
