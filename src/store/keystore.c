/*
 * The keystore file (see keystore.h). Format, one compact JSON document:
 *
 *   {"magic":"memchat-keystore","version":1,
 *    "kdf":null | {"alg":"argon2id13","salt":B64,"opslimit":N,"memlimit":N},
 *    "check":B64(nonce[24] || tag[16]),
 *    "records":[{"tenant":ID,"provider":P,"key_id":ID,
 *                "nonce":B64(24 bytes),"ct":B64(ciphertext || tag)}, ...]}
 *
 * B64 is standard padded base64, decoded strictly (no stray characters, no
 * non-zero padding bits), so every flipped bit of the file changes what is
 * read. "check" is XChaCha20-Poly1305 of the empty message whose associated
 * data is the header (version and KDF parameters): it fails exactly when
 * the master key is wrong or the header was altered, so neither reaches the
 * records. Each record's associated data is "memchat-keystore/1/record",
 * tenant, provider and key_id, NUL-separated (none may contain a NUL).
 * Every member is required and no other is accepted; every record is
 * verified at open, so a damaged file is refused as a whole, never
 * overwritten. Secrets live decrypted only in sodium_malloc'd memory.
 */
#include "config.h"

#include "store/keystore.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "util/alloc.h"
#include "util/fileio.h"
#include "util/ident.h"

#define KS_MAGIC    "memchat-keystore"
#define KS_VERSION  1
#define KS_NONCE    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define KS_TAG      crypto_aead_xchacha20poly1305_ietf_ABYTES
#define KS_ALG_NAME "argon2id13"
#define KS_AD_MAX   256

_Static_assert(KEYSTORE_SALT_BYTES == crypto_pwhash_SALTBYTES, "salt size");
_Static_assert(KEYSTORE_KEY_BYTES == crypto_aead_xchacha20poly1305_ietf_KEYBYTES, "key size");
_Static_assert(KS_NONCE == 24 && KS_TAG == 16, "xchacha20poly1305 sizes");

struct ks_record {
    char *tenant;
    char *provider;
    char *key_id;
    uint8_t nonce[KS_NONCE];
    uint8_t *ct; /* ciphertext || tag; not secret */
    size_t ct_len;
};

struct keystore {
    char *path;
    uint8_t *master; /* sodium_malloc'd, KEYSTORE_KEY_BYTES */
    bool has_kdf;
    struct keystore_kdf kdf;
    struct ks_record *recs; /* sorted by (tenant, provider, key_id) */
    size_t n, cap;
};

static bool provider_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ':' || c == '_' || c == '-';
        if (!ok || n >= KEYSTORE_PROVIDER_MAX)
            return false;
    }
    return n > 0;
}

/* Checks the three names of a slot; the message names the bad field. */
static int check_slot(const char *tenant, const char *provider, const char *key_id, char *err,
                      size_t errlen)
{
    if (tenant == NULL || !ident_valid(tenant)) {
        snprintf(err, errlen, "invalid tenant \"%.64s\" (accepted: [A-Za-z0-9_-]{1,64})",
                 tenant ? tenant : "");
        return -1;
    }
    if (provider == NULL || !provider_valid(provider)) {
        snprintf(err, errlen, "invalid provider \"%.64s\" (accepted: [a-z0-9:_-]{1,64})",
                 provider ? provider : "");
        return -1;
    }
    if (key_id == NULL || !ident_valid(key_id)) {
        snprintf(err, errlen, "invalid key id \"%.64s\" (accepted: [A-Za-z0-9_-]{1,64})",
                 key_id ? key_id : "");
        return -1;
    }
    return 0;
}

/* The associated data of a record: binds it to its slot. */
static size_t record_ad(uint8_t *ad, const char *tenant, const char *provider, const char *key_id)
{
    int n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/record%c%s%c%s%c%s", KS_VERSION,
                     '\0', tenant, '\0', provider, '\0', key_id);
    return (size_t)n; /* names are bounded (3 x 64) so n < KS_AD_MAX */
}

/* The associated data of the check value: binds the header to the key. */
static size_t header_ad(uint8_t *ad, bool has_kdf, const struct keystore_kdf *kdf)
{
    int n;
    if (!has_kdf) {
        n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/check/kdf=none", KS_VERSION);
    } else {
        char salt[2 * KEYSTORE_SALT_BYTES + 1];
        sodium_bin2hex(salt, sizeof salt, kdf->salt, sizeof kdf->salt);
        n = snprintf((char *)ad, KS_AD_MAX, "memchat-keystore/%d/check/kdf=%s/%s/%llu/%zu",
                     KS_VERSION, KS_ALG_NAME, salt, kdf->opslimit, kdf->memlimit);
    }
    return (size_t)n;
}

static int slot_cmp(const struct ks_record *r, const char *tenant, const char *provider,
                    const char *key_id)
{
    int c = strcmp(r->tenant, tenant);
    if (c == 0)
        c = strcmp(r->provider, provider);
    if (c == 0)
        c = strcmp(r->key_id, key_id);
    return c;
}

/* Index of the slot, or of where it would go (*found false). */
static size_t find_slot(const struct keystore *ks, const char *tenant, const char *provider,
                        const char *key_id, bool *found)
{
    size_t lo = 0, hi = ks->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = slot_cmp(&ks->recs[mid], tenant, provider, key_id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void record_fini(struct ks_record *r)
{
    xfree(r->tenant);
    xfree(r->provider);
    xfree(r->key_id);
    xfree(r->ct);
}

/* Seals secret into r's nonce and ct under key, for r's slot. */
static void record_seal(struct ks_record *r, const uint8_t *key, const uint8_t *secret, size_t len)
{
    uint8_t ad[KS_AD_MAX];
    size_t adlen = record_ad(ad, r->tenant, r->provider, r->key_id);
    randombytes_buf(r->nonce, sizeof r->nonce);
    uint8_t *ct = xmalloc(len + KS_TAG);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(ct, &clen, secret, len, ad, adlen, NULL, r->nonce,
                                               key);
    xfree(r->ct);
    r->ct = ct;
    r->ct_len = (size_t)clen;
}

/* Opens r under key into a sodium_malloc'd NUL-terminated buffer. */
static int record_open(const struct ks_record *r, const uint8_t *key, char **out, size_t *len)
{
    *out = NULL;
    if (r->ct_len < KS_TAG)
        return -1;
    size_t plen = r->ct_len - KS_TAG;
    char *p = sodium_malloc(plen + 1);
    if (p == NULL)
        return -1;
    uint8_t ad[KS_AD_MAX];
    size_t adlen = record_ad(ad, r->tenant, r->provider, r->key_id);
    unsigned long long got = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)p, &got, NULL, r->ct, r->ct_len, ad,
                                                   adlen, r->nonce, key) != 0) {
        sodium_free(p);
        return -1;
    }
    p[plen] = '\0';
    *out = p;
    if (len != NULL)
        *len = (size_t)got;
    return 0;
}

void keystore_secret_free(char *secret)
{
    if (secret != NULL)
        sodium_free(secret); /* wipes before unmapping */
}

int keystore_kdf_init(struct keystore_kdf *kdf, unsigned long long opslimit, size_t memlimit,
                      char *err, size_t errlen)
{
    if (opslimit == 0)
        opslimit = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    if (memlimit == 0)
        memlimit = crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (opslimit < crypto_pwhash_OPSLIMIT_MIN || opslimit > crypto_pwhash_OPSLIMIT_MAX ||
        memlimit < crypto_pwhash_MEMLIMIT_MIN || memlimit > crypto_pwhash_MEMLIMIT_MAX) {
        snprintf(err, errlen, "key derivation limits out of range (opslimit %llu, memlimit %zu)",
                 opslimit, memlimit);
        return -1;
    }
    randombytes_buf(kdf->salt, sizeof kdf->salt);
    kdf->opslimit = opslimit;
    kdf->memlimit = memlimit;
    return 0;
}

int keystore_derive_key(const char *pass, size_t len, const struct keystore_kdf *kdf,
                        uint8_t out[KEYSTORE_KEY_BYTES], char *err, size_t errlen)
{
    if (crypto_pwhash(out, KEYSTORE_KEY_BYTES, pass, len, kdf->salt, kdf->opslimit, kdf->memlimit,
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        sodium_memzero(out, KEYSTORE_KEY_BYTES);
        snprintf(err, errlen,
                 "cannot derive the master key from the passphrase (out of memory? memlimit "
                 "%zu)",
                 kdf->memlimit);
        return -1;
    }
    return 0;
}

/* --- parsing ----------------------------------------------------------- */

/* Decodes s strictly into out (at most cap bytes; *got set): the text must
 * be exactly what encoding the result gives back, because libsodium 1.0.18
 * silently accepts some bytes with the high bit set. */
int keystore_b64_decode(const char *s, size_t slen, uint8_t *out, size_t cap, size_t *got)
{
    const char *end = NULL;
    *got = 0;
    int rc = -1;
    if (sodium_base642bin(out, cap, s, slen, NULL, got, &end, sodium_base64_VARIANT_ORIGINAL) ==
            0 &&
        end == s + slen &&
        sodium_base64_ENCODED_LEN(*got, sodium_base64_VARIANT_ORIGINAL) == slen + 1) {
        /* libsodium 1.0.18 decodes some bytes with the high bit set as if
         * they were letters; encoding back catches them, and any other
         * second spelling of the same bytes. */
        char *back = xmalloc(slen + 1);
        sodium_bin2base64(back, slen + 1, out, *got, sodium_base64_VARIANT_ORIGINAL);
        rc = sodium_memcmp(back, s, slen) == 0 ? 0 : -1;
        sodium_memzero(back, slen + 1);
        xfree(back);
    }
    if (rc != 0) {
        sodium_memzero(out, cap);
        *got = 0;
    }
    return rc;
}

static int b64_decode(const char *s, uint8_t *out, size_t cap, size_t *got)
{
    return keystore_b64_decode(s, strlen(s), out, cap, got);
}

/* Decodes the base64 string member name of obj into exactly n bytes. */
static int get_b64(const cJSON *obj, const char *name, uint8_t *out, size_t n)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    size_t got = 0;
    if (!cJSON_IsString(it) || it->valuestring == NULL ||
        b64_decode(it->valuestring, out, n, &got) != 0 || got != n)
        return -1;
    return 0;
}

/* True when obj is an object with exactly the listed members (no extra or
 * repeated ones). */
static bool has_exact_members(const cJSON *obj, const char *const *names, size_t n)
{
    if (!cJSON_IsObject(obj) || (size_t)cJSON_GetArraySize(obj) != n)
        return false;
    for (const cJSON *it = obj->child; it != NULL; it = it->next) {
        size_t hits = 0;
        for (size_t i = 0; i < n; i++)
            if (it->string != NULL && strcmp(it->string, names[i]) == 0)
                hits++;
        if (hits != 1)
            return false;
    }
    for (size_t i = 0; i < n; i++) {
        size_t seen = 0;
        for (const cJSON *it = obj->child; it != NULL; it = it->next)
            if (strcmp(it->string, names[i]) == 0)
                seen++;
        if (seen != 1)
            return false;
    }
    return true;
}

/* A positive integer member that a double represents exactly. */
static int get_uint(const cJSON *obj, const char *name, unsigned long long max,
                    unsigned long long *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(it))
        return -1;
    double d = it->valuedouble;
    if (!(d >= 1.0 && d <= 9007199254740992.0) || (double)(unsigned long long)d != d ||
        (unsigned long long)d > max)
        return -1;
    *out = (unsigned long long)d;
    return 0;
}

static int parse_kdf(const cJSON *k, struct keystore_kdf *kdf)
{
    static const char *const names[] = {"alg", "salt", "opslimit", "memlimit"};
    if (!has_exact_members(k, names, 4))
        return -1;
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(k, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, KS_ALG_NAME) != 0)
        return -1;
    unsigned long long ops, mem;
    if (get_b64(k, "salt", kdf->salt, sizeof kdf->salt) != 0 ||
        get_uint(k, "opslimit", crypto_pwhash_OPSLIMIT_MAX, &ops) != 0 ||
        get_uint(k, "memlimit", crypto_pwhash_MEMLIMIT_MAX, &mem) != 0 ||
        ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN)
        return -1;
    kdf->opslimit = ops;
    kdf->memlimit = (size_t)mem;
    return 0;
}

/* Reads and parses path's header. 0 with *doc; 1 when missing; -1 err. */
static int load_doc(const char *path, cJSON **doc, bool *has_kdf, struct keystore_kdf *kdf,
                    char *err, size_t errlen)
{
    *doc = NULL;
    char *data = NULL;
    size_t len = 0;
    char ferr[512];
    int rc = fileio_read_all(path, KEYSTORE_MAX_FILE, &data, &len, ferr, sizeof ferr);
    if (rc == -2)
        return 1;
    if (rc != 0) {
        snprintf(err, errlen, "keystore %s: %s", path, ferr);
        return -1;
    }
    const char *why = NULL;
    cJSON *d = NULL;
    if (strlen(data) != len) {
        why = "contains a NUL byte";
    } else if ((d = cJSON_ParseWithOpts(data, NULL, 1)) == NULL) {
        why = "is not valid JSON (truncated or damaged?)";
    } else {
        static const char *const names[] = {"magic", "version", "kdf", "check", "records"};
        const cJSON *magic = cJSON_GetObjectItemCaseSensitive(d, "magic");
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(d, "version");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(d, "kdf");
        if (!cJSON_IsObject(d) || !cJSON_IsString(magic) ||
            strcmp(magic->valuestring, KS_MAGIC) != 0)
            why = "is not a memchat keystore (bad magic)";
        else if (!cJSON_IsNumber(ver) || ver->valuedouble != (double)KS_VERSION)
            why = "has an unsupported version (this memchat reads version 1)";
        else if (!has_exact_members(d, names, 5))
            why = "has missing or unknown members";
        else if (cJSON_IsNull(k))
            *has_kdf = false;
        else if (parse_kdf(k, kdf) == 0)
            *has_kdf = true;
        else
            why = "has a damaged kdf header";
    }
    sodium_memzero(data, len);
    xfree(data);
    if (why != NULL) {
        cJSON_Delete(d);
        snprintf(err, errlen, "keystore %s %s; refusing to use it", path, why);
        return -1;
    }
    *doc = d;
    return 0;
}

static const char *parse_records(struct keystore *ks, const cJSON *arr)
{
    static const char *const names[] = {"tenant", "provider", "key_id", "nonce", "ct"};
    if (!cJSON_IsArray(arr))
        return "records is not an array";
    for (const cJSON *r = arr->child; r != NULL; r = r->next) {
        if (!has_exact_members(r, names, 5))
            return "a record has missing or unknown members";
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tenant");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "provider");
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(r, "key_id");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(r, "ct");
        char e[8];
        if (!cJSON_IsString(t) || !cJSON_IsString(p) || !cJSON_IsString(k) || !cJSON_IsString(ct) ||
            check_slot(t->valuestring, p->valuestring, k->valuestring, e, sizeof e) != 0)
            return "a record has an invalid tenant, provider or key id";
        bool found;
        size_t at = find_slot(ks, t->valuestring, p->valuestring, k->valuestring, &found);
        if (found)
            return "two records share a slot";
        struct ks_record rec = {0};
        size_t b64len = strlen(ct->valuestring);
        size_t maxct = b64len / 4 * 3;
        if (maxct < KS_TAG || maxct > KEYSTORE_MAX_SECRET + KS_TAG + 3)
            return "a record's ciphertext has a bad length";
        rec.ct = xmalloc(maxct);
        if (get_b64(r, "nonce", rec.nonce, sizeof rec.nonce) != 0 ||
            b64_decode(ct->valuestring, rec.ct, maxct, &rec.ct_len) != 0 || rec.ct_len < KS_TAG) {
            xfree(rec.ct);
            return "a record has damaged base64";
        }
        rec.tenant = xstrdup(t->valuestring);
        rec.provider = xstrdup(p->valuestring);
        rec.key_id = xstrdup(k->valuestring);
        char *plain = NULL;
        if (record_open(&rec, ks->master, &plain, NULL) != 0) {
            record_fini(&rec);
            return "a record does not decrypt (damaged, or moved to another slot)";
        }
        keystore_secret_free(plain);
        if (ks->n == ks->cap) {
            ks->cap = ks->cap ? ks->cap * 2 : 8;
            ks->recs = xreallocarray(ks->recs, ks->cap, sizeof *ks->recs);
        }
        memmove(&ks->recs[at + 1], &ks->recs[at], (ks->n - at) * sizeof *ks->recs);
        ks->recs[at] = rec;
        ks->n++;
    }
    return NULL;
}

int keystore_kdf_params(const char *path, struct keystore_kdf *kdf, char *err, size_t errlen)
{
    cJSON *doc = NULL;
    bool has = false;
    int rc = load_doc(path, &doc, &has, kdf, err, errlen);
    cJSON_Delete(doc);
    if (rc != 0)
        return rc;
    return has ? 0 : 1;
}

int keystore_open(const char *path, const uint8_t master[KEYSTORE_KEY_BYTES], struct keystore **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    struct keystore *ks = xcalloc(1, sizeof *ks);
    ks->path = xstrdup(path);
    ks->master = sodium_malloc(KEYSTORE_KEY_BYTES);
    if (ks->master == NULL) {
        snprintf(err, errlen, "keystore %s: cannot allocate locked memory for the key", path);
        keystore_free(ks);
        return -1;
    }
    memcpy(ks->master, master, KEYSTORE_KEY_BYTES);
    cJSON *doc = NULL;
    int rc = load_doc(path, &doc, &ks->has_kdf, &ks->kdf, err, errlen);
    if (rc == 1) {
        *out = ks;
        return 0;
    }
    if (rc != 0) {
        keystore_free(ks);
        return -1;
    }
    uint8_t check[KS_NONCE + KS_TAG], ad[KS_AD_MAX];
    size_t adlen = header_ad(ad, ks->has_kdf, &ks->kdf);
    const char *bad = NULL;
    int ok = -1;
    if (get_b64(doc, "check", check, sizeof check) != 0)
        snprintf(err, errlen, "keystore %s is damaged (bad check value); refusing to use it", path);
    else if (crypto_aead_xchacha20poly1305_ietf_decrypt(NULL, NULL, NULL, check + KS_NONCE, KS_TAG,
                                                        ad, adlen, check, ks->master) != 0)
        snprintf(err, errlen,
                 "keystore %s: the master key does not open this keystore (wrong key, or a "
                 "damaged header)",
                 path);
    else if ((bad = parse_records(ks, cJSON_GetObjectItemCaseSensitive(doc, "records"))) != NULL)
        snprintf(err, errlen, "keystore %s is damaged (%s); refusing to use it", path, bad);
    else
        ok = 0;
    cJSON_Delete(doc);
    if (ok != 0) {
        keystore_free(ks);
        return -1;
    }
    *out = ks;
    return 0;
}

void keystore_free(struct keystore *ks)
{
    if (ks == NULL)
        return;
    for (size_t i = 0; i < ks->n; i++)
        record_fini(&ks->recs[i]);
    xfree(ks->recs);
    if (ks->master != NULL)
        sodium_free(ks->master);
    xfree(ks->path);
    xfree(ks);
}

int keystore_set(struct keystore *ks, const char *tenant, const char *provider, const char *key_id,
                 const char *secret, size_t len, char *err, size_t errlen)
{
    if (check_slot(tenant, provider, key_id, err, errlen) != 0)
        return -1;
    if (len > KEYSTORE_MAX_SECRET) {
        snprintf(err, errlen, "secret for %s/%s/%s is too long (%zu bytes; at most %d)", tenant,
                 provider, key_id, len, KEYSTORE_MAX_SECRET);
        return -1;
    }
    bool found;
    size_t at = find_slot(ks, tenant, provider, key_id, &found);
    if (!found) {
        if (ks->n == ks->cap) {
            ks->cap = ks->cap ? ks->cap * 2 : 8;
            ks->recs = xreallocarray(ks->recs, ks->cap, sizeof *ks->recs);
        }
        memmove(&ks->recs[at + 1], &ks->recs[at], (ks->n - at) * sizeof *ks->recs);
        struct ks_record rec = {0};
        rec.tenant = xstrdup(tenant);
        rec.provider = xstrdup(provider);
        rec.key_id = xstrdup(key_id);
        ks->recs[at] = rec;
        ks->n++;
    }
    record_seal(&ks->recs[at], ks->master, (const uint8_t *)secret, len);
    return 0;
}

int keystore_get(const struct keystore *ks, const char *tenant, const char *provider,
                 const char *key_id, char **secret_out, size_t *len, char *err, size_t errlen)
{
    *secret_out = NULL;
    if (check_slot(tenant, provider, key_id, err, errlen) != 0)
        return -1;
    bool found;
    size_t at = find_slot(ks, tenant, provider, key_id, &found);
    if (!found)
        return 1;
    if (record_open(&ks->recs[at], ks->master, secret_out, len) != 0) {
        snprintf(err, errlen, "keystore %s: the record %s/%s/%s does not decrypt", ks->path, tenant,
                 provider, key_id);
        return -1;
    }
    return 0;
}

int keystore_rm(struct keystore *ks, const char *tenant, const char *provider, const char *key_id)
{
    char e[8];
    if (check_slot(tenant, provider, key_id, e, sizeof e) != 0)
        return 1;
    bool found;
    size_t at = find_slot(ks, tenant, provider, key_id, &found);
    if (!found)
        return 1;
    record_fini(&ks->recs[at]);
    memmove(&ks->recs[at], &ks->recs[at + 1], (ks->n - at - 1) * sizeof *ks->recs);
    ks->n--;
    return 0;
}

size_t keystore_count(const struct keystore *ks)
{
    return ks->n;
}

int keystore_list(const struct keystore *ks, keystore_list_cb cb, void *ud, char *err,
                  size_t errlen)
{
    for (size_t i = 0; i < ks->n; i++) {
        const struct ks_record *r = &ks->recs[i];
        char *plain = NULL;
        size_t len = 0;
        if (record_open(r, ks->master, &plain, &len) != 0) {
            snprintf(err, errlen, "keystore %s: the record %s/%s/%s does not decrypt", ks->path,
                     r->tenant, r->provider, r->key_id);
            return -1;
        }
        char masked[9] = "****";
        bool printable = len >= 12;
        for (size_t j = len >= 4 ? len - 4 : 0; printable && j < len; j++)
            printable = plain[j] > 0x20 && plain[j] < 0x7f;
        if (printable)
            memcpy(masked + 4, plain + len - 4, 5); /* includes the NUL */
        keystore_secret_free(plain);
        int stop = cb(ud, r->tenant, r->provider, r->key_id, masked);
        sodium_memzero(masked, sizeof masked);
        if (stop)
            break;
    }
    return 0;
}

/* Adds name: base64(p[0..n)) to obj. */
static void add_b64(cJSON *obj, const char *name, const uint8_t *p, size_t n)
{
    size_t blen = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *b = xmalloc(blen);
    sodium_bin2base64(b, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
    cJSON_AddStringToObject(obj, name, b);
    xfree(b);
}

int keystore_save(struct keystore *ks, char *err, size_t errlen)
{
    cJSON *d = cJSON_CreateObject();
    if (d == NULL)
        alloc_die("keystore document");
    cJSON_AddStringToObject(d, "magic", KS_MAGIC);
    cJSON_AddNumberToObject(d, "version", KS_VERSION);
    if (ks->has_kdf) {
        cJSON *k = cJSON_AddObjectToObject(d, "kdf");
        cJSON_AddStringToObject(k, "alg", KS_ALG_NAME);
        add_b64(k, "salt", ks->kdf.salt, sizeof ks->kdf.salt);
        cJSON_AddNumberToObject(k, "opslimit", (double)ks->kdf.opslimit);
        cJSON_AddNumberToObject(k, "memlimit", (double)ks->kdf.memlimit);
    } else {
        cJSON_AddNullToObject(d, "kdf");
    }
    uint8_t check[KS_NONCE + KS_TAG], ad[KS_AD_MAX];
    size_t adlen = header_ad(ad, ks->has_kdf, &ks->kdf);
    randombytes_buf(check, KS_NONCE);
    crypto_aead_xchacha20poly1305_ietf_encrypt(check + KS_NONCE, NULL, NULL, 0, ad, adlen, NULL,
                                               check, ks->master);
    add_b64(d, "check", check, sizeof check);
    cJSON *arr = cJSON_AddArrayToObject(d, "records");
    for (size_t i = 0; i < ks->n; i++) {
        const struct ks_record *r = &ks->recs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tenant", r->tenant);
        cJSON_AddStringToObject(o, "provider", r->provider);
        cJSON_AddStringToObject(o, "key_id", r->key_id);
        add_b64(o, "nonce", r->nonce, sizeof r->nonce);
        add_b64(o, "ct", r->ct, r->ct_len);
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (text == NULL)
        alloc_die("keystore text");
    size_t n = strlen(text);
    int rc;
    if (n > KEYSTORE_MAX_FILE) {
        snprintf(err, errlen, "keystore %s: would be %zu bytes, over the limit of %d; not saved",
                 ks->path, n, KEYSTORE_MAX_FILE);
        rc = -1;
    } else {
        rc = fileio_replace(ks->path, text, n, 0600, err, errlen);
    }
    cJSON_free(text);
    return rc;
}

int keystore_rotate(struct keystore *ks, const uint8_t new_master[KEYSTORE_KEY_BYTES],
                    const struct keystore_kdf *kdf, char *err, size_t errlen)
{
    /* Decrypt everything first so a failure leaves ks unchanged. */
    char **plain = xcalloc(ks->n ? ks->n : 1, sizeof *plain);
    size_t *lens = xcalloc(ks->n ? ks->n : 1, sizeof *lens);
    int rc = 0;
    for (size_t i = 0; i < ks->n && rc == 0; i++) {
        if (record_open(&ks->recs[i], ks->master, &plain[i], &lens[i]) != 0) {
            snprintf(err, errlen, "keystore %s: the record %s/%s/%s does not decrypt", ks->path,
                     ks->recs[i].tenant, ks->recs[i].provider, ks->recs[i].key_id);
            rc = -1;
        }
    }
    if (rc == 0) {
        memcpy(ks->master, new_master, KEYSTORE_KEY_BYTES);
        for (size_t i = 0; i < ks->n; i++)
            record_seal(&ks->recs[i], ks->master, (const uint8_t *)plain[i], lens[i]);
        ks->has_kdf = kdf != NULL;
        if (kdf != NULL)
            ks->kdf = *kdf;
    }
    for (size_t i = 0; i < ks->n; i++)
        keystore_secret_free(plain[i]);
    xfree(plain);
    xfree(lens);
    return rc;
}
