/*
 * mkvectors: writes the LZO1X test vectors used by package lzo.
 *
 * For every input it writes <name>.bin (the uncompressed bytes) and two
 * compressed forms of it, <name>-x1.lzo (lzo1x_1_compress, what Bacula
 * uses) and <name>-x999.lzo (lzo1x_999_compress, which emits more
 * instruction forms, e.g. short M1/M2 matches right after literals).
 * Each .lzo file is one raw LZO1X block with no framing.
 *
 * This program only CALLS liblzo2 (compress, and decompress_safe as a
 * self-check); it contains no LZO codec code. All inputs are generated from
 * a fixed-seed PRNG, so the output is reproducible. See gen.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lzo/lzo1x.h>

#define K64 65536

static unsigned long long rng_state;

static void seed(unsigned long long s) { rng_state = s * 0x9E3779B97F4A7C15ULL + 1; }

/* xorshift64* */
static unsigned long long rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t rndn(size_t lo, size_t hi) { return lo + (size_t)(rnd() % (hi - lo + 1)); }

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(rnd() >> 56);
}

static const char *words[] = {
	"the", "of", "and", "to", "in", "is", "was", "that", "for", "on",
	"backup", "restore", "volume", "record", "block", "job", "client",
	"director", "storage", "daemon", "catalog", "file", "tape", "label",
	"session", "stream", "compressed", "data", "attributes", "checksum",
	"bacula", "bareos", "pool", "media", "incremental", "differential",
	"full", "schedule", "retention", "period", "device", "archive",
	"/usr/share/doc", "/etc/bacula/bacula-dir.conf", "/var/lib/bacula",
	"2024-01-15", "12:34:56", "error", "warning", "OK", "terminated",
	"with", "from", "written", "bytes", "files", "status", "autochanger",
};

static void fill_text(unsigned char *p, size_t n)
{
	size_t i = 0, col = 0;
	int start = 1;
	while (i < n) {
		const char *w = words[rnd() % (sizeof words / sizeof words[0])];
		size_t wl = strlen(w);
		for (size_t j = 0; j < wl && i < n; j++, i++, col++)
			p[i] = (unsigned char)((start && j == 0 && w[0] >= 'a' && w[0] <= 'z') ? w[0] - 32 : w[j]);
		start = 0;
		if (i >= n)
			break;
		unsigned r = (unsigned)(rnd() % 20);
		if (r == 0) {
			p[i++] = '.';
			start = 1;
			if (i < n)
				p[i++] = col > 60 ? '\n' : ' ';
			if (col > 60)
				col = 0;
		} else if (r == 1) {
			p[i++] = ',';
			if (i < n)
				p[i++] = ' ';
		} else if (col > 72) {
			p[i++] = '\n';
			col = 0;
		} else {
			p[i++] = ' ';
		}
	}
}

static unsigned char *wrk1, *wrk999;
static const char *outdir;

static void write_file(const char *name, const char *suffix, const unsigned char *p, size_t n)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s%s", outdir, name, suffix);
	FILE *f = fopen(path, "wb");
	if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void emit(const char *name, const unsigned char *in, size_t n)
{
	size_t bound = n + n / 16 + 64 + 3;
	unsigned char *out = malloc(bound + 1), *back = malloc(n + 1);
	char suffix[32];
	if (out == NULL || back == NULL)
		exit(1);
	write_file(name, ".bin", in, n);
	for (int level = 0; level < 2; level++) {
		lzo_uint outlen = bound, backlen = n;
		int r = level == 0
			? lzo1x_1_compress(in, n, out, &outlen, wrk1)
			: lzo1x_999_compress(in, n, out, &outlen, wrk999);
		if (r != LZO_E_OK) {
			fprintf(stderr, "%s: compress failed: %d\n", name, r);
			exit(1);
		}
		r = lzo1x_decompress_safe(out, outlen, back, &backlen, NULL);
		if (r != LZO_E_OK || backlen != n || memcmp(in, back, n) != 0) {
			fprintf(stderr, "%s: round trip failed: %d\n", name, r);
			exit(1);
		}
		snprintf(suffix, sizeof suffix, "%s", level == 0 ? "-x1.lzo" : "-x999.lzo");
		write_file(name, suffix, out, outlen);
		printf("%-12s %-10s %6lu -> %6lu\n", name, suffix, (unsigned long)n, (unsigned long)outlen);
	}
	free(out);
	free(back);
}

int main(int argc, char **argv)
{
	static unsigned char buf[K64];
	if (argc != 2) {
		fprintf(stderr, "usage: mkvectors OUTDIR\n");
		return 2;
	}
	outdir = argv[1];
	if (lzo_init() != LZO_E_OK) {
		fprintf(stderr, "lzo_init failed\n");
		return 1;
	}
	wrk1 = malloc(LZO1X_1_MEM_COMPRESS);
	wrk999 = malloc(LZO1X_999_MEM_COMPRESS);
	if (wrk1 == NULL || wrk999 == NULL)
		return 1;

	emit("empty", buf, 0);
	emit("byte1", (const unsigned char *)"A", 1);
	emit("abc", (const unsigned char *)"abc", 3);
	emit("abcd", (const unsigned char *)"abcd", 4);
	{
		const char *s = "Hello, hello, hello! LZO1X short text: abcabcabcabc xyzxyz "
				"the quick brown fox jumps over the lazy dog; the quick brown fox.\n";
		emit("short", (const unsigned char *)s, strlen(s));
	}

	seed(1);
	fill_text(buf, K64);
	emit("text64k", buf, K64);

	seed(2);
	fill_random(buf, K64);
	emit("random64k", buf, K64);

	memset(buf, 0, K64);
	emit("zeros64k", buf, K64);

	/* Long runs of one byte (match lengths needing zero extension bytes)
	 * separated by short random literal strings. */
	seed(3);
	for (size_t i = 0; i < K64;) {
		size_t run = rndn(1, 3000), lit = rndn(0, 40);
		unsigned char b = (unsigned char)(rnd() >> 56);
		for (size_t j = 0; j < run && i < K64; j++)
			buf[i++] = b;
		for (size_t j = 0; j < lit && i < K64; j++)
			buf[i++] = (unsigned char)(rnd() >> 56);
	}
	emit("runs64k", buf, K64);

	/* Text chunks and random chunks interleaved. */
	seed(4);
	for (size_t i = 0; i < K64;) {
		size_t n = rndn(100, 4000);
		if (n > K64 - i)
			n = K64 - i;
		if (rnd() & 1)
			fill_text(buf + i, n);
		else
			fill_random(buf + i, n);
		i += n;
	}
	emit("mixed64k", buf, K64);

	/* Far matches: a 4 KiB random block A repeated at distances of
	 * 34 KiB (M4, H=1) and 18 KiB (M4, H=0), with random filler. */
	seed(5);
	{
		size_t a = 4096, i = 0;
		fill_random(buf, a);
		i += a;
		fill_random(buf + i, 30 * 1024);
		i += 30 * 1024;
		memcpy(buf + i, buf, a);
		i += a;
		fill_random(buf + i, 14 * 1024);
		i += 14 * 1024;
		memcpy(buf + i, buf, a);
		i += a;
		fill_random(buf + i, K64 - i);
	}
	emit("far64k", buf, K64);

	/* Text with small periodic patterns (overlapping matches with short
	 * distances) and repeated phrases, 16 KiB. */
	seed(6);
	{
		size_t i = 0, n = 16384;
		while (i < n) {
			size_t period = rndn(1, 12), len = rndn(1, 200), k = rndn(5, 60);
			for (size_t j = 0; j < period && i + j < n; j++)
				buf[i + j] = (unsigned char)('a' + rnd() % 26);
			for (size_t j = period; j < len && i + j < n; j++)
				buf[i + j] = buf[i + j - period];
			i += len < n - i ? len : n - i;
			if (i + k <= n) {
				fill_text(buf + i, k);
				i += k;
			}
		}
		emit("periodic16k", buf, n);
	}
	return 0;
}
