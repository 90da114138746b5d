#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "gate.h"
#include "fsutil.h"
#include "log.h"
#include "unit.h"

static char dir[4096], cfg[4200], err[1024];

static struct config *
load(enum role role, const char *text)
{
	struct config *cf = NULL;

	unit_write(cfg, text);
	err[0] = '\0';
	if (config_load(cfg, role, &cf, err, sizeof err) != 0)
		return NULL;
	return cf;
}

static void
expect_error(enum role role, const char *text, const char *where,
    const char *what)
{
	char want[4400];
	struct config *cf = load(role, text);

	CHECK(cf == NULL);
	config_free(cf);
	snprintf(want, sizeof want, "%s:%s: ", cfg, where);
	CHECK_CONTAINS(err, want);
	CHECK_CONTAINS(err, what);
}

int
main(void)
{
	struct config *cf;
	char tok[4200], text[8192];

	log_init("test", LOG_LEVEL_WARN);
	snprintf(dir, sizeof dir, "%s", unit_tmpdir());
	snprintf(cfg, sizeof cfg, "%s/c.yaml", dir);
	snprintf(tok, sizeof tok, "%s/token", dir);
	unit_write(tok, "0123456789abcdef0123456789abcdef\n");

	/* Rates. */
	{
		int64_t r = 0;

		CHECK(config_rate_parse("20Mbit", &r) == 0 && r == 2500000);
		CHECK(config_rate_parse("2.5MB", &r) == 0 && r == 2500000);
		CHECK(config_rate_parse("512KiB", &r) == 0 && r == 524288);
		CHECK(config_rate_parse("1GiB/s", &r) == 0 && r == 1073741824);
		CHECK(config_rate_parse("4096B", &r) == 0 && r == 4096);
		CHECK(config_rate_parse("fast", &r) != 0);
		CHECK(config_rate_parse("1KB", &r) != 0); /* too slow */
		CHECK(config_rate_parse("-1MB", &r) != 0);
		CHECK(config_rate_parse("1 MB", &r) != 0);
		CHECK(config_rate_parse("1MBx", &r) != 0);
		CHECK(config_rate_parse("1MB/h", &r) != 0);
		CHECK(config_rate_parse("20", &r) != 0);
		CHECK(config_rate_parse("nanMB", &r) != 0);
		CHECK(config_rate_parse("1e30GB", &r) != 0);
	}

	/* Valid, for each role, with relative paths resolved. */
	cf = load(ROLE_EXPORTER,
	    "source: db\nlisten: 127.0.0.1:7401\nstate_dir: "
	    "state\nexport_command: [./hook, /srv/app.db]\nschedule: \"15 3 * "
	    "* *\"\nnotify: [http://127.0.0.1:7402]\ntoken_file: token\n");
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK_STR(cf->source, "db");
		CHECK(cf->listen_port == 7401);
		CHECK_CONTAINS(cf->state_dir, "/state");
		CHECK(cf->state_dir[0] == '/');
		CHECK(cf->export_command[0][0] == '/');
		CHECK_STR(cf->export_command[1], "/srv/app.db");
		CHECK(cf->schedule.kind == SCHEDULE_CRON);
		CHECK(cf->nnotify == 1);
		CHECK_STR(cf->token, "0123456789abcdef0123456789abcdef");
		CHECK(cf->keep_last_export == 0);
		config_free(cf);
	} else
		fprintf(stderr, "%s\n", err);
	cf = load(ROLE_EXPORTER,
	    "source: db\nlisten: 127.0.0.1:7401\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://h:1]\ntoken_file: token\ntls: off\n"
	    "keep_last_export: true\n");
	CHECK(cf != NULL && cf->keep_last_export == 1);
	config_free(cf);
	expect_error(ROLE_EXPORTER,
	    "source: db\nlisten: 127.0.0.1:7401\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://h:1]\ntoken_file: token\nkeep_last_export: "
	    "yes\n",
	    "7:19", "\"keep_last_export\" must be true or false");
	cf = load(ROLE_PULLBACKUP,
	    "listen: 127.0.0.1:7402\narchive_dir: /var/lib/a\ntoken_file: "
	    "token\nsources:\n  db:\n    exporter: http://127.0.0.1:7401\n    "
	    "importers: [http://127.0.0.1:7403, http://10.0.0.2:7403/]\n    "
	    "retention: {older_than: 2W, keep_last: 3}\ntls: off\n");
	CHECK(cf != NULL);
	if (cf != NULL) {
		CHECK(cf->nsources == 1);
		CHECK(cf->sources[0].nimporters == 2);
		CHECK_STR(cf->sources[0].importers[1], "http://10.0.0.2:7403");
		CHECK(cf->sources[0].keep_last == 3);
		CHECK(cf->sources[0].older_than == 14 * 86400);
		CHECK(cf->sources[0].compress == WIREZ_AUTO);
		config_free(cf);
	} else
		fprintf(stderr, "%s\n", err);
	cf = load(ROLE_IMPORTER,
	    "listen: 127.0.0.1:7403\nstate_dir: /var/lib/i\ntoken_file: "
	    "token\nsources:\n  db:\n    pullbackup: http://127.0.0.1:7402\n   "
	    " import_command: [/usr/bin/true]\n    compress: zstd\n");
	CHECK(cf != NULL && cf->sources[0].compress == WIREZ_ZSTD);
	config_free(cf);
	expect_error(ROLE_PULLBACKUP,
	    "listen: 127.0.0.1:7402\narchive_dir: /a\ntoken_file: token\n"
	    "sources:\n  db:\n    exporter: http://127.0.0.1:7401\n"
	    "    compress: gzip\n",
	    "7:15", "\"compress\" must be auto, zstd or off");
	expect_error(ROLE_PULLBACKUP,
	    "listen: 127.0.0.1:7402\narchive_dir: /a\ntoken_file: token\n"
	    "sources:\n  db:\n    exporter: http://127.0.0.1:7401\n"
	    "    increment_compression: xz\n",
	    "7:28", "\"increment_compression\" must be gzip or zstd");
	cf = load(ROLE_PULLBACKUP,
	    "listen: 127.0.0.1:7402\narchive_dir: /a\ntoken_file: token\n"
	    "sources:\n  db:\n    exporter: http://127.0.0.1:7401\n"
	    "    increment_compression: zstd\n    compress: off\ntls: off\n");
	CHECK(cf != NULL && cf->sources[0].zstd_increments == 1 &&
	    cf->sources[0].compress == WIREZ_OFF);
	config_free(cf);

	/* Errors, each with its position. */
	expect_error(ROLE_EXPORTER, "source: db\nlistne: 1.2.3.4:5\n", "2:1",
	    "unknown key \"listne\"");
	expect_error(ROLE_EXPORTER, "source: db\nlisten: [a, b]\n", "2:9",
	    "\"listen\" must be");
	expect_error(ROLE_EXPORTER, "source: db\nlisten: 127.0.0.1:99999\n",
	    "2:9", "bad port");
	expect_error(ROLE_EXPORTER, "source: db\n", "1:1",
	    "missing required key \"listen\"");
	expect_error(ROLE_EXPORTER, "source: db\nsource: x\n", "2:1",
	    "given twice");
	expect_error(ROLE_EXPORTER, "a: [1, 2\n", "2:1",
	    "did not find expected");
	expect_error(ROLE_EXPORTER, "- just\n- a list\n", "1:1", "mapping");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nschedule: sometimes\nnotify: [http://h:1]\ntoken_file: "
	    "token\n");
	expect_error(ROLE_EXPORTER, text, "5:11", "neither an interval");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [ftp://h:1]\ntoken_file: token\n");
	expect_error(ROLE_EXPORTER, text, "5:10", "must be a URL");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [https://h:1]\ntoken_file: token\n");
	expect_error(ROLE_EXPORTER, text, "1:1",
	    "https://h:1 is https: the configuration needs \"tls\"");
	/* Plain HTTP beyond this host only with tls: off. */
	snprintf(text, sizeof text,
	    "source: db\nlisten: 0.0.0.0:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://127.0.0.1:1]\ntoken_file: token\n");
	expect_error(ROLE_EXPORTER, text, "1:1",
	    "no \"tls\", and 0.0.0.0 is beyond this host");
	snprintf(text, sizeof text,
	    "source: db\nlisten: '[::1]:1'\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://backup.example:1]\ntoken_file: token\n");
	expect_error(ROLE_EXPORTER, text, "1:1",
	    "http://backup.example:1 is beyond this host: every link would "
	    "be plain HTTP");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 0.0.0.0:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://backup.example:1]\ntoken_file: token\n"
	    "tls: off\nmax_connections: 9\nmax_connections_per_peer: 3\n");
	cf = load(ROLE_EXPORTER, text);
	CHECK(cf != NULL && cf->tls == NULL && cf->tls_off &&
	    cf->max_conns == 9 && cf->max_peer_conns == 3);
	config_free(cf);
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://localhost:1]\ntoken_file: token\n");
	cf = load(ROLE_EXPORTER, text);
	CHECK(cf != NULL && cf->max_conns == GATE_DEFAULT_MAX_CONNS &&
	    cf->max_peer_conns == GATE_DEFAULT_MAX_PEER_CONNS);
	config_free(cf);
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://127.0.0.1:1]\ntoken_file: token\n"
	    "max_connections: 0\n");
	expect_error(ROLE_EXPORTER, text, "7:18", "from 1 to 1000000");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [https://h:1]\ntoken_file: token\ntls: "
	    "{certificate: c, key: k, pins: {'http://h:1': sha256:00}}\n");
	expect_error(ROLE_EXPORTER, text, "7:38",
	    "http://h:1 is not a URL like https://HOST:PORT");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [https://h:1]\ntoken_file: token\ntls: "
	    "{certificate: c, key: k, pins: 3}\n");
	expect_error(ROLE_EXPORTER, text, "7:37",
	    "must be a mapping of each peer");
	/* tls: needs a way to know the peers, and real fingerprints. */
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [https://h:1]\ntoken_file: token\ntls: "
	    "{certificate: c, key: k}\n");
	expect_error(ROLE_EXPORTER, text, "7:6",
	    "needs a way to know the peers");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [https://h:1]\ntoken_file: token\ntls: "
	    "{certificate: c, key: k, pins: [sha256:abc]}\n");
	expect_error(ROLE_EXPORTER, text, "7:38", "not a fingerprint");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [https://h:1]\ntoken_file: token\ntls: "
	    "{certificate: c, key: k, bogus: 1, ca: a}\n");
	expect_error(ROLE_EXPORTER, text, "7:31", "unknown key \"bogus\"");
	{
		struct config *tcf = NULL;
		char p[4300], terr[512];

		snprintf(p, sizeof p, "%s/t.yaml", dir);
		unit_write(p,
		    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\n"
		    "export_command: [x]\nnotify: ['https://[::1]:7402']\n"
		    "token_file: token\ntls:\n  certificate: c.crt\n  key: "
		    "k.key\n  pins: "
		    "['SHA256:6B:43:82:78:1E:8C:9A:59:0D:81:00:EE:92:07:F8:CA:"
		    "67:D5:1A:A7:1C:7C:54:B5:91:36:98:56:D0:A0:8E:6B']\n");
		CHECK(config_load(p, ROLE_EXPORTER, &tcf, terr, sizeof terr) ==
		    0);
		if (tcf == NULL)
			fprintf(stderr, "%s\n", terr);
		CHECK(tcf != NULL && tcf->tls != NULL && tcf->tls->npins == 1 &&
		    strcmp(tcf->tls->pins[0],
			"sha256:6b4382781e8c9a590d8100ee9207f8ca67d51aa71c7c54b"
			"591369856d0a08e6b") == 0);
		CHECK(tcf != NULL &&
		    strcmp(tcf->notify[0], "https://[::1]:7402") == 0);
		CHECK(tcf != NULL && tcf->tls->pin_peers[0] == NULL);
		CHECK(tcf != NULL && tcf->warning != NULL &&
		    strstr(tcf->warning, "cannot tell its peers apart") !=
			NULL);
		config_free(tcf);
		/* Pins by peer: a URL (made canonical) or a host, one
		 * fingerprint or several. */
		unit_write(p,
		    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\n"
		    "export_command: [x]\nnotify: ['https://[::1]:7402']\n"
		    "token_file: token\ntls:\n  certificate: c.crt\n  key: "
		    "k.key\n  pins:\n    'https://[::1]:7402/': "
		    "sha256:"
		    "6b4382781e8c9a590d8100ee9207f8ca67d51aa71c7c54b59136"
		    "9856d0a08e6b\n    Backup.Example: "
		    "[sha256:6b4382781e8c9a590"
		    "d8100ee9207f8ca67d51aa71c7c54b591369856d0a08e6b, "
		    "sha256:1b4"
		    "382781e8c9a590d8100ee9207f8ca67d51aa71c7c54b591369856d0a08"
		    "e"
		    "6b]\n");
		CHECK(config_load(p, ROLE_EXPORTER, &tcf, terr, sizeof terr) ==
		    0);
		if (tcf == NULL)
			fprintf(stderr, "%s\n", terr);
		CHECK(tcf != NULL && tcf->tls->npins == 3 &&
		    strcmp(tcf->tls->pin_peers[0], "https://[::1]:7402") == 0 &&
		    strcmp(tcf->tls->pin_peers[1], "backup.example") == 0 &&
		    strcmp(tcf->tls->pin_peers[2], "backup.example") == 0 &&
		    strncmp(tcf->tls->pins[2], "sha256:1b43", 11) == 0);
		config_free(tcf);
	}
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://h:1]\ntoken_file: missing-token\n");
	expect_error(ROLE_EXPORTER, text, "6:13", "No such file");
	unit_write(tok, "short\n");
	snprintf(text, sizeof text,
	    "source: db\nlisten: 127.0.0.1:1\nstate_dir: s\nexport_command: "
	    "[x]\nnotify: [http://h:1]\ntoken_file: token\n");
	expect_error(ROLE_EXPORTER, text, "6:13", "too short");
	expect_error(ROLE_PULLBACKUP,
	    "listen: 127.0.0.1:1\narchive_dir: a\ntoken_file: "
	    "token\nsources:\n  \"../x\": {exporter: http://h:1}\n",
	    "5:3", "bad source name");
	expect_error(ROLE_PULLBACKUP,
	    "listen: 127.0.0.1:1\narchive_dir: a\ntoken_file: "
	    "token\nsources:\n  db:\n    exporter: http://h:1\n    retention: "
	    "{keep_last: -1}\n",
	    "7:28", "keep_last");
	expect_error(ROLE_IMPORTER,
	    "listen: 127.0.0.1:1\nstate_dir: s\ntoken_file: token\nsources:\n  "
	    "db:\n    pullbackup: http://h:1\n",
	    "6:5", "missing required key \"import_command\"");
	expect_error(ROLE_EXPORTER, "x: &a [1]\ny: *a\n", "2:4", "aliases");

	/* A missing file. */
	{
		struct config *c2 = NULL;
		char missing[4200];
		snprintf(missing, sizeof missing, "%s/nope.yaml", dir);
		CHECK(config_load(missing, ROLE_EXPORTER, &c2, err,
			  sizeof err) != 0);
		CHECK_CONTAINS(err, "nope.yaml: cannot read the configuration");
	}
	fs_rm_rf(dir);
	return unit_done();
}
