/* pending.c: weak stand-ins for subcommands still being written. */
#include "cli/cli.h"
#include <stdio.h>

__attribute__((weak)) int cmd_daemon(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_login(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_status(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_queue(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_show(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_watch(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_enqueue(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_bump(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_retry(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_activate(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_pause(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_resume(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_shutdown(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_deliver(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_restore_user(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_sync(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_verify(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_backup(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}

__attribute__((weak)) int cmd_demo(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "mailrestore %s: not built yet\n", argv[0]);
	return 70;
}
