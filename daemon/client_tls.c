/*
 * client_tls.c: TLS for the clients of the daemon's network listeners
 * (--tls-ca, --tls-cert, --tls-key): the server must show a certificate the
 * given CA signed for the host named in --connect; the client shows its
 * own when the daemon asks (--tls-client-ca). It plugs its I/O into struct
 * daemon_client, so only the binaries that call daemon_client_tls_start()
 * load OpenSSL: the lean login hook does not (it hands TLS to the full
 * binary).
 */
#include "daemon/daemon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

/* The newest OpenSSL error of this thread as text (the queue emptied). */
static const char *tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error(), next;

	while ((next = ERR_get_error()) != 0)
		e = next;
	if (e == 0)
		snprintf(buf, len, "the connection was closed during the handshake");
	else
		ERR_error_string_n(e, buf, len);
	return buf;
}

/* Maps an SSL call's failure to errno (EAGAIN for a socket timeout). */
static ssize_t tls_fail(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
		errno = EAGAIN;
		return -1;
	}
	ERR_clear_error();
	/* An alert (the daemon refused our certificate after the handshake,
	 * as TLS 1.3 does) is a protocol error, not a vanished daemon. */
	if (e == SSL_ERROR_SSL)
		errno = EPROTO;
	else if (errno == 0)
		errno = ECONNRESET;
	return -1;
}

static ssize_t tls_send(struct daemon_client *c, const void *p, size_t len)
{
	int r;

	ERR_clear_error();
	r = SSL_write(c->tls, p, len > INT32_MAX ? INT32_MAX : (int)len);
	return r > 0 ? r : tls_fail(c->tls, r);
}

static ssize_t tls_recv(struct daemon_client *c, void *p, size_t len)
{
	int r;

	ERR_clear_error();
	r = SSL_read(c->tls, p, len > INT32_MAX ? INT32_MAX : (int)len);
	return r > 0 ? r : tls_fail(c->tls, r);
}

static void tls_end(struct daemon_client *c)
{
	if (c->tls == NULL)
		return;
	(void)SSL_shutdown(c->tls);
	SSL_free(c->tls); /* and the context: the session held the last reference */
	c->tls = NULL;
}

/* Speaks TLS on c (see daemon.h). */
int daemon_client_tls_start(struct daemon_client *c, const char *host, const char *ca_file,
			    const char *cert_file, const char *key_file, struct mr_error *err)
{
	unsigned char ip[16];
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	char e[256];
	long v;
	int rc = -1;

	if ((cert_file == NULL) != (key_file == NULL)) {
		mr_error_set(err, 0, "--tls-cert and --tls-key go together");
		err->errnum = EINVAL;
		return -1;
	}
	if (ca_file == NULL) {
		/* Without a CA the server is nobody in particular: refuse. */
		mr_error_set(err, 0, "TLS needs --tls-ca FILE (the CA that signed the "
			     "daemon's certificate)");
		err->errnum = EINVAL;
		return -1;
	}
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL) {
		mr_error_set(err, ENOMEM, "SSL_CTX_new: %s", tls_error(e, sizeof(e)));
		goto out;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		mr_error_set(err, 0, "--tls-ca %s: %s", ca_file, tls_error(e, sizeof(e)));
		err->errnum = EINVAL;
		goto out;
	}
	if (cert_file != NULL &&
	    (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_check_private_key(ctx) != 1)) {
		mr_error_set(err, 0, "--tls-cert %s / --tls-key %s: %s", cert_file, key_file,
			     tls_error(e, sizeof(e)));
		err->errnum = EINVAL;
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, c->fd) != 1) {
		mr_error_set(err, ENOMEM, "SSL_new: %s", tls_error(e, sizeof(e)));
		goto out;
	}
	/* The certificate must name the host --connect names: its IP
	 * address, or its DNS name (also sent as SNI). */
	if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1) {
			mr_error_set(err, EINVAL, "%s: not an address OpenSSL takes", host);
			goto out;
		}
	} else if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1) {
		mr_error_set(err, EINVAL, "%s: not a name OpenSSL takes", host);
		goto out;
	}
	if (SSL_connect(ssl) != 1) {
		v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			mr_error_set(err, 0, "TLS: the daemon's certificate: %s",
				     X509_verify_cert_error_string(v));
		else
			mr_error_set(err, 0, "TLS handshake: %s", tls_error(e, sizeof(e)));
		err->errnum = EPROTO;
		goto out;
	}
	c->tls = ssl;
	c->send = tls_send;
	c->recv = tls_recv;
	c->end = tls_end;
	ssl = NULL;
	rc = 0;
out:
	SSL_free(ssl);
	SSL_CTX_free(ctx); /* the session holds its own reference */
	return rc;
}
