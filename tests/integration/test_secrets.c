/*
 * The secrets canary. memchat is run through every verb, every error path a
 * test can reach and the most verbose log level, holding distinctive canary
 * secrets: global provider keys, tenant keys and a tool credential in the
 * keystore, a key command's output (and its text), the master key (right,
 * wrong and malformed), the Opik key and the keystore passphrase (right and
 * wrong). After every step each canary, and its base64 at every alignment
 * (and the raw bytes of a base64 master key), is looked for in every place
 * a secret could leak to: stdout (text and --json events), stderr, every
 * file under HOME (the data dir with memchat.log, traces/, memchat.db and
 * its -wal, the keystore; the config dir), and every request the loopback
 * server received, where only the header that carries a key to its own
 * server may hold it. The canaries, the places and the steps are tables,
 * so later features (memory, tools) add rows, not code. A self-check plants
 * every form of every canary and proves the scanner finds it.
 */
#include "cli_harness.h"

#include "../server/mockserver.h"

static struct mock *mock;

/* ---- the canaries --------------------------------------------------------
 * Values use [A-Za-z0-9_-] only, so no JSON, URL or shell quoting can
 * disguise one; the base64 master keys add '=' (never escaped). */
#define C_GLOBAL_OPENAI    "sk-CANARY-global-openai-5Qx9"
#define C_GLOBAL_ANTHROPIC "sk-ant-CANARY-global-anthropic-7Hw2"
#define C_TENANT_OPENAI    "sk-CANARY-tenant-openai-3Kd8"
#define C_TENANT_ANTHROPIC "sk-ant-CANARY-tenant-anthropic-9Pz4"
#define C_TOOL             "ghp_CANARY_tool_github_6Mv1"
#define C_CMD_OUT          "sk-CANARY-command-output-2Jr7"
#define C_CMD_TEXT         "tok-CANARY-command-text-8Yb3"
#define C_FAILED_OUT       "sk-CANARY-failed-command-4Tn6"
#define C_MASTER_RAW       "CANARY-master-key-32-bytes-long!"
#define C_MASTER           "Q0FOQVJZLW1hc3Rlci1rZXktMzItYnl0ZXMtbG9uZyE="
#define C_WRONG_MASTER_RAW "CANARY-wrong-master-key-32bytes!"
#define C_WRONG_MASTER     "Q0FOQVJZLXdyb25nLW1hc3Rlci1rZXktMzJieXRlcyE="
#define C_BAD_MASTER       "bad-CANARY-master-key-value-1Qs5"
#define C_OPIK             "opik-CANARY-api-key-6Fe2"
#define C_PASS             "pass-CANARY-phrase-0Lw8"
#define C_WRONG_PASS       "pass-CANARY-wrong-phrase-5Ug3"

/* The key commands: the output is built by printf, so the command's text
 * does not hold it, and the text carries a token of its own. */
#define CMD_OK     "printf 'sk-CANARY-command-output-%s' 2Jr7 # " C_CMD_TEXT
#define CMD_FAILED "printf 'sk-CANARY-failed-command-%s' 4Tn6; exit 3"

#define ROUTE_OPENAI    "/v1/chat/completions"
#define ROUTE_ANTHROPIC "/v1/messages"
#define ROUTE_OPIK      "/v1/private/"

/* A secret memchat holds during the run. */
struct canary {
    const char *name;   /* what it is, for messages */
    const char *value;  /* as memchat receives it */
    const char *raw;    /* value's decoded bytes when value is base64, else NULL */
    const char *route;  /* the only server path it may be sent to (NULL: none) */
    const char *header; /* in this request header only */
    bool must_send;     /* the scenario sends it there (the check's positive control) */
};

static const struct canary canaries[] = {
    {"OPENAI_API_KEY (global)", C_GLOBAL_OPENAI, NULL, ROUTE_OPENAI, "authorization", true},
    {"ANTHROPIC_API_KEY (global)", C_GLOBAL_ANTHROPIC, NULL, ROUTE_ANTHROPIC, "x-api-key", true},
    {"acme's OpenAI key (keys set)", C_TENANT_OPENAI, NULL, ROUTE_OPENAI, "authorization", true},
    {"acme's Anthropic key (keys set)", C_TENANT_ANTHROPIC, NULL, ROUTE_ANTHROPIC, "x-api-key",
     true},
    {"acme's tool:github credential", C_TOOL, NULL, NULL, NULL, false},
    {"the key command's output", C_CMD_OUT, NULL, ROUTE_OPENAI, "authorization", true},
    {"a token in the key command's text", C_CMD_TEXT, NULL, NULL, NULL, false},
    {"the output of a key command that failed", C_FAILED_OUT, NULL, NULL, NULL, false},
    {"MEMCHAT_MASTER_KEY", C_MASTER, C_MASTER_RAW, NULL, NULL, false},
    {"a wrong MEMCHAT_MASTER_KEY", C_WRONG_MASTER, C_WRONG_MASTER_RAW, NULL, NULL, false},
    {"a malformed MEMCHAT_MASTER_KEY", C_BAD_MASTER, NULL, NULL, NULL, false},
    {"OPIK_API_KEY", C_OPIK, NULL, ROUTE_OPIK, "authorization", true},
    {"the keystore passphrase", C_PASS, NULL, NULL, NULL, false},
    {"a wrong keystore passphrase", C_WRONG_PASS, NULL, NULL, NULL, false},
};

#define N_CANARIES (sizeof canaries / sizeof canaries[0])
#define MAX_FORMS  16

/* One byte pattern that betrays a canary. */
struct form {
    char text[128];
    size_t len;
    char how[48];
};

static struct form forms[N_CANARIES][MAX_FORMS];
static size_t n_forms[N_CANARIES];

/* Standard (or URL-safe) padded base64 of in[0..n) into out; its length. */
static size_t b64_encode(const unsigned char *in, size_t n, char *out, bool url)
{
    const char *abc = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                          : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = abc[(v >> 18) & 63];
        out[o++] = abc[(v >> 12) & 63];
        out[o++] = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

static void form_add(size_t c, const char *text, size_t len, const char *how)
{
    for (size_t i = 0; i < n_forms[c]; i++)
        if (forms[c][i].len == len && memcmp(forms[c][i].text, text, len) == 0)
            return;
    assert_true(n_forms[c] < MAX_FORMS && len < sizeof forms[c][0].text);
    struct form *f = &forms[c][n_forms[c]++];
    memcpy(f->text, text, len);
    f->text[len] = '\0';
    f->len = len;
    snprintf(f->how, sizeof f->how, "%s", how);
}

/* The forms of s: itself, and its base64 as it reads inside any longer
 * base64 text: preceded by 0, 1 or 2 other bytes, the characters that
 * depend on s's bytes alone (standard and URL-safe alphabets). */
static void forms_of(size_t c, const char *s, const char *what)
{
    size_t n = strlen(s);
    char how[48];
    snprintf(how, sizeof how, "%s", what);
    form_add(c, s, n, how);
    for (size_t shift = 0; shift < 3; shift++) {
        unsigned char in[96] = {0};
        memcpy(in + shift, s, n);
        for (int url = 0; url < 2; url++) {
            char out[160];
            b64_encode(in, shift + n, out, url);
            size_t from = (shift * 8 + 5) / 6, to = (shift + n) * 8 / 6;
            snprintf(how, sizeof how, "%s, base64%s at offset %zu", what, url ? "url" : "", shift);
            form_add(c, out + from, to - from, how);
        }
    }
}

static void forms_init(void)
{
    for (size_t c = 0; c < N_CANARIES; c++) {
        n_forms[c] = 0;
        forms_of(c, canaries[c].value, "as is");
        if (canaries[c].raw != NULL)
            forms_of(c, canaries[c].raw, "decoded");
    }
}

/* The first form of any canary (but skip, an index or N_CANARIES) in
 * hay[0..len): describes it in what and returns true. */
static bool find_canary(const char *hay, size_t len, size_t skip, char *what, size_t wlen)
{
    for (size_t c = 0; c < N_CANARIES; c++) {
        if (c == skip)
            continue;
        for (size_t f = 0; f < n_forms[c]; f++)
            if (memmem(hay, len, forms[c][f].text, forms[c][f].len) != NULL) {
                snprintf(what, wlen, "%s (%s)", canaries[c].name, forms[c][f].how);
                return true;
            }
    }
    return false;
}

/* ---- the places ----------------------------------------------------------
 * Everything under HOME is read (raw bytes); the rows name the files a hit
 * is reported in (the longest matching row wins) and say which must exist
 * after the scenario, so a scan that reads nothing cannot pass. */
enum place_kind { PLACE_STDOUT, PLACE_STDERR, PLACE_FILES, PLACE_REQUESTS };
enum place_root { ROOT_NONE, ROOT_HOME, ROOT_DATA, ROOT_CONFIG };

struct place {
    const char *name;
    enum place_kind kind;
    enum place_root root;
    const char *rel; /* a file or a directory under root; "" is root itself */
    bool must_exist;
};

static const struct place places[] = {
    {"stdout (text, and every event of --json)", PLACE_STDOUT, ROOT_NONE, NULL, false},
    {"stderr", PLACE_STDERR, ROOT_NONE, NULL, false},
    {"memchat.log", PLACE_FILES, ROOT_DATA, "memchat.log", true},
    {"the traces/ files", PLACE_FILES, ROOT_DATA, "traces", true},
    {"the data file memchat.db", PLACE_FILES, ROOT_DATA, "memchat.db", true},
    {"the data file's memchat.db-wal", PLACE_FILES, ROOT_DATA, "memchat.db-wal", false},
    {"the keystore", PLACE_FILES, ROOT_DATA, "keystore", true},
    {"a file of the data dir", PLACE_FILES, ROOT_DATA, "", true},
    {"a file of the config dir (master.key, config.env)", PLACE_FILES, ROOT_CONFIG, "", true},
    {"a file of HOME (the working directory)", PLACE_FILES, ROOT_HOME, "", true},
    {"the requests the server received (outside their own auth header)", PLACE_REQUESTS, ROOT_NONE,
     NULL, false},
};

#define N_PLACES (sizeof places / sizeof places[0])

static const char *root_dir(enum place_root r)
{
    switch (r) {
    case ROOT_HOME:
        return fx.dir;
    case ROOT_DATA:
        return fx.data;
    case ROOT_CONFIG:
        return fx.cfgdir;
    case ROOT_NONE:
        break;
    }
    return NULL;
}

/* The path of a place row (caller frees). */
static char *place_path(const struct place *p)
{
    const char *root = root_dir(p->root);
    size_t n = strlen(root) + strlen(p->rel) + 2;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, p->rel[0] ? "%s/%s" : "%s", root, p->rel);
    return s;
}

/* The name of the most specific file row that holds path. */
static const char *place_of_file(const char *path)
{
    const char *best = "a file";
    size_t best_len = 0;
    for (size_t i = 0; i < N_PLACES; i++) {
        if (places[i].kind != PLACE_FILES)
            continue;
        char *p = place_path(&places[i]);
        size_t n = strlen(p);
        if (strncmp(path, p, n) == 0 && (path[n] == '\0' || path[n] == '/') && n > best_len) {
            best = places[i].name;
            best_len = n;
        }
        free(p);
    }
    return best;
}

/* Where a canary was found, for scan_file. */
struct scan_hit {
    char *where;
    size_t wlen;
};

static bool scan_file(void *ud, const char *path, const char *data, size_t len)
{
    struct scan_hit *h = ud;
    char what[160];
    if (!find_canary(data, len, N_CANARIES, what, sizeof what))
        return false;
    snprintf(h->where, h->wlen, "%s in %s (%.400s)", what, place_of_file(path), path);
    return true;
}

/* Scans the files of every file row (each file once: the rows' roots are
 * HOME and directories inside it, so HOME's walk covers them all). */
static bool scan_files(char *where, size_t wlen)
{
    struct scan_hit h = {where, wlen};
    return harness_walk_files(fx.dir, scan_file, &h);
}

/* Scans every request the server logged. A canary in the header its row
 * allows, on its row's route, is a legitimate send and is counted in
 * sends[] (when not NULL); anywhere else it is a hit. */
static bool scan_requests(size_t sends[N_CANARIES], char *where, size_t wlen)
{
    cJSON *arr = NULL;
    mock_requests(mock, &arr);
    bool hit = false;
    const cJSON *req;
    cJSON_ArrayForEach(req, arr)
    {
        const char *path = cJSON_GetObjectItemCaseSensitive(req, "path")->valuestring;
        const char *body = cJSON_GetObjectItemCaseSensitive(req, "body")->valuestring;
        char what[160];
        if (find_canary(path, strlen(path), N_CANARIES, what, sizeof what) ||
            find_canary(body, strlen(body), N_CANARIES, what, sizeof what)) {
            snprintf(where, wlen, "%s in the path or body of a request to %s", what, path);
            hit = true;
            break;
        }
        const cJSON *h;
        cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(req, "headers"))
        {
            const char *v = h->valuestring;
            size_t allowed = N_CANARIES;
            for (size_t c = 0; c < N_CANARIES; c++)
                if (canaries[c].header != NULL && strcmp(h->string, canaries[c].header) == 0 &&
                    strstr(path, canaries[c].route) != NULL && strstr(v, canaries[c].value)) {
                    allowed = c;
                    if (sends != NULL)
                        sends[c]++;
                }
            if (find_canary(h->string, strlen(h->string), N_CANARIES, what, sizeof what) ||
                find_canary(v, strlen(v), allowed, what, sizeof what)) {
                snprintf(where, wlen, "%s in the %s header of a request to %s", what, h->string,
                         path);
                hit = true;
                break;
            }
        }
        if (hit)
            break;
    }
    cJSON_Delete(arr);
    return hit;
}

/* Scans every place: r's streams (r may be NULL), the files, the requests. */
static bool scan_places(const struct run *r, size_t sends[N_CANARIES], char *where, size_t wlen)
{
    for (size_t i = 0; i < N_PLACES; i++) {
        char what[160];
        const struct place *p = &places[i];
        if ((p->kind == PLACE_STDOUT && r != NULL &&
             find_canary(r->out, r->out_len, N_CANARIES, what, sizeof what)) ||
            (p->kind == PLACE_STDERR && r != NULL &&
             find_canary(r->err, r->err_len, N_CANARIES, what, sizeof what))) {
            snprintf(where, wlen, "%s on %s", what, p->name);
            return true;
        }
    }
    return scan_files(where, wlen) || scan_requests(sends, where, wlen);
}

/* ---- the steps ----------------------------------------------------------- */

/* One run of memchat. env entries are "NAME=VALUE" (replacing the base
 * environment's NAME; '@' in a value stands for the server's URL) or a bare
 * "NAME" (removing it). */
struct step {
    const char *name;
    int exit_code;      /* -1: any (a chat goes on after a failed turn) */
    const char *output; /* a text stdout or stderr holds: the path was reached */
    const char *in;     /* stdin, or NULL */
    const char *env[4];
    void (*before)(void); /* sets up a state for the run, or NULL */
    void (*after)(void);  /* undoes it, before the scan */
    const char *args[16];
};

/* The environment every step starts from: all keys, both providers and
 * Opik on the test server, debug logging. */
static const char *const base_env[] = {
    "OPENAI_BASE_URL=@/v1",
    "ANTHROPIC_BASE_URL=@",
    "OPIK_URL_OVERRIDE=@/api",
    "OPENAI_API_KEY=" C_GLOBAL_OPENAI,
    "ANTHROPIC_API_KEY=" C_GLOBAL_ANTHROPIC,
    "MEMCHAT_MASTER_KEY=" C_MASTER,
    "OPIK_API_KEY=" C_OPIK,
    "MEMCHAT_LOG_LEVEL=debug",
    "MEMCHAT_MAX_RETRIES=1",
    "MEMCHAT_PROVIDER=openai",
    "MEMCHAT_MODEL=mock",
};

#define N_BASE_ENV (sizeof base_env / sizeof base_env[0])

static char keystore_copy[65536];
static size_t keystore_copy_len;

static void write_home_file(const char *dir, const char *name, const char *text)
{
    assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
    free(tu_write_file(dir, name, text));
}

static void remove_home_file(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(unlink(path), 0);
}

static void bad_config_write(void)
{
    write_home_file(fx.cfgdir, "config.env", "MEMCHAT_MAX_TOKENS=plenty\n");
}

static void bad_config_remove(void)
{
    remove_home_file(fx.cfgdir, "config.env");
}

/* A working-directory .env may not set MEMCHAT_MASTER_KEY: the refusal
 * must not repeat the value. The file is removed before the scan (it is
 * the test's own plant, not memchat's output). */
static void dotenv_write(void)
{
    write_home_file(fx.dir, ".env", "MEMCHAT_MASTER_KEY=" C_WRONG_MASTER "\n");
}

static void dotenv_remove(void)
{
    remove_home_file(fx.dir, ".env");
}

/* The data dir moves to <data>.main for one step, which thus starts from
 * an empty one; afterwards that step's dir stays as <data>.pass (still
 * scanned: it is under HOME) and the main one comes back. */
static void data_dir_move(const char *from_suffix, const char *to_suffix)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s%s", fx.data, from_suffix);
    snprintf(b, sizeof b, "%s%s", fx.data, to_suffix);
    if (rename(a, b) != 0)
        fail_msg("rename %s %s: %s", a, b, strerror(errno));
}

static void data_dir_aside(void)
{
    data_dir_move("", ".main");
}

static void data_dir_back(void)
{
    data_dir_move("", ".pass");
    data_dir_move(".main", "");
}

/* Flips one byte inside the keystore's last record, keeping a copy. */
static void keystore_damage(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    size_t len = 0;
    char *s = tu_read_file(path, &len);
    assert_non_null(s);
    assert_true(len <= sizeof keystore_copy);
    memcpy(keystore_copy, s, len);
    keystore_copy_len = len;
    char *ct = NULL;
    for (char *p = s; (p = strstr(p, "\"ct\":\"")) != NULL; p++)
        ct = p;
    assert_non_null(ct);
    ct[6 + 4] ^= 0x01;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(s, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    free(s);
}

static void keystore_restore(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/keystore", fx.data);
    size_t len = 0;
    char *s = tu_read_file(path, &len);
    assert_non_null(s);
    assert_false(len == keystore_copy_len && memcmp(s, keystore_copy, len) == 0); /* damaged */
    free(s);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(keystore_copy, 1, keystore_copy_len, f), keystore_copy_len);
    assert_int_equal(fclose(f), 0);
}

/* The rows of the steps table: a run with stdin in, the exit code it must
 * end with and a text its output must hold; with one change of the
 * environment; with hooks around it. */
#define STEP_ROW(name_, env_, before_, after_, in_, code_, says_, ...) \
    {                                                                  \
        name_, code_, says_, in_, {env_}, before_, after_,             \
        {                                                              \
            __VA_ARGS__                                                \
        }                                                              \
    }
#define STEP(name_, in_, code_, says_, ...) \
    STEP_ROW(name_, NULL, NULL, NULL, in_, code_, says_, __VA_ARGS__)
#define STEP_ENV(name_, env_, in_, code_, says_, ...) \
    STEP_ROW(name_, env_, NULL, NULL, in_, code_, says_, __VA_ARGS__)
#define STEP_HOOK(name_, before_, after_, in_, code_, says_, ...) \
    STEP_ROW(name_, NULL, before_, after_, in_, code_, says_, __VA_ARGS__)

#define ASK_ACME "ask", "--json", "--tenant", "acme"
#define REPLIED  "\"event\":\"delta\"" /* a --json turn that streamed a reply */
#define NO_ENV   "MEMCHAT_MASTER_KEY"  /* removes it: master.key applies */

static const struct step steps[] = {
    /* the keystore and its records, under MEMCHAT_MASTER_KEY */
    STEP("keys init", NULL, 0, "created the keystore", "keys", "init"),
    STEP_HOOK("keys init --passphrase (in a fresh data dir)", data_dir_aside, data_dir_back,
              C_PASS "\n", 0, "from a passphrase", "keys", "init", "--passphrase",
              "--passphrase-stdin"),
    STEP("keys set (openai)", C_TENANT_OPENAI, 0, "stored the key", "keys", "set", "--tenant",
         "acme", "--provider", "openai"),
    STEP("keys set (anthropic)", C_TENANT_ANTHROPIC "\n", 0, "stored the key", "keys", "set",
         "--tenant", "acme", "--provider", "anthropic"),
    STEP("keys set (tool:github)", C_TOOL, 0, "stored the key", "keys", "set", "--tenant", "acme",
         "--provider", "tool:github"),
    STEP("keys set --command", NULL, 0, "stored the key command", "keys", "set", "--tenant", "cmd",
         "--provider", "openai", "--command", CMD_OK),
    STEP("keys set --command (one that fails)", NULL, 0, "stored the key command", "keys", "set",
         "--tenant", "broken", "--provider", "openai", "--command", CMD_FAILED),
    STEP("keys list", NULL, 0, "tool:github", "keys", "list"),
    STEP("keys list --json", NULL, 0, "\"masked\"", "keys", "list", "--json"),

    /* turns with each kind of key */
    STEP("ask (global OpenAI key)", NULL, 0, REPLIED, "ask", "--json", "hi"),
    STEP("ask (global Anthropic key)", NULL, 0, REPLIED, "ask", "--json", "--provider", "anthropic",
         "hi"),
    STEP("ask (tenant OpenAI key)", NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP("ask (tenant Anthropic key)", NULL, 0, REPLIED, ASK_ACME, "--provider", "anthropic", "hi"),
    STEP("ask (key command)", NULL, 0, "mock reply", "ask", "--tenant", "cmd", "hi"),
    STEP("ask (the question on stdin)", "a question on stdin", 0, "mock reply", "ask", "--tenant",
         "acme"),

    /* error paths of a turn */
    STEP("ask (a failing key command)", NULL, 2, "exited with status 3", "ask", "--json",
         "--tenant", "broken", "hi"),
    STEP("ask (OpenAI answers 401)", NULL, 3, "401", ASK_ACME, "--model", "mock:401", "hi"),
    STEP("ask (Anthropic answers 401, global key)", NULL, 3, "401", "ask", "--provider",
         "anthropic", "--model", "mock:401", "hi"),
    STEP("ask (500 until retries run out)", NULL, 3, "gave up", "ask", "--tenant", "acme",
         "--model", "mock:500", "hi"),
    STEP("ask (Anthropic answers 529)", NULL, 3, "529", ASK_ACME, "--provider", "anthropic",
         "--model", "mock:529", "hi"),
    STEP("ask (400)", NULL, 3, "400", ASK_ACME, "--model", "mock:400", "hi"),
    STEP("ask (a huge error body)", NULL, 3, "500", "ask", "--tenant", "acme", "--model",
         "mock:big-error", "hi"),
    STEP("ask (the stream breaks)", NULL, 3, "network", ASK_ACME, "--model", "mock:drop", "hi"),
    STEP_ENV("ask (Opik answers 401 quoting its key)", "OPIK_URL_OVERRIDE=@/mock:echo-key/api",
             NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP_ENV("ask (Opik answers 500)", "OPIK_URL_OVERRIDE=@/mock:500/api", NULL, 0, REPLIED,
             ASK_ACME, "hi"),

    /* the chat, and the other verbs */
    STEP("chat --plain", "hello\n/tenant cmd\nagain\n/tenant other\nonce more\n", 0,
         "mock reply: once more", "chat", "--plain", "--tenant", "acme"),
    STEP("chat --plain (a failing key command)", "hello\n", -1, "exited with status 3", "chat",
         "--plain", "--tenant", "broken"),
    STEP("chat --json", "hello\n", 0, REPLIED, "chat", "--json", "--tenant", "acme"),
    STEP("config", NULL, 0, "OPIK_API_KEY", "config"),
    STEP("config --json", NULL, 0, "MEMCHAT_MASTER_KEY", "config", "--json"),
    STEP("costs", NULL, 0, "acme", "costs"),
    STEP("costs --json", NULL, 0, "mock", "costs", "--by", "model", "--json"),
    STEP("limits set", NULL, 0, "rpm", "limits", "set", "--tenant", "acme", "rpm=100"),
    STEP("limits show --json", NULL, 0, "rpm", "limits", "show", "--tenant", "acme", "--json"),

    /* configuration errors */
    STEP_HOOK("a bad config.env (config)", bad_config_write, bad_config_remove, NULL, 2,
              "MEMCHAT_MAX_TOKENS", "config"),
    STEP_HOOK("a bad config.env (ask)", bad_config_write, bad_config_remove, NULL, 2,
              "MEMCHAT_MAX_TOKENS", ASK_ACME, "hi"),
    STEP_HOOK("MEMCHAT_MASTER_KEY in a working-directory .env", dotenv_write, dotenv_remove, NULL,
              2, ".env", "keys", "list"),
    STEP("an unknown option", NULL, 2, "--bogus", "ask", "--bogus", "hi"),

    /* master key errors */
    STEP_ENV("a wrong master key (keys list)", "MEMCHAT_MASTER_KEY=" C_WRONG_MASTER, NULL, 2,
             "does not open", "keys", "list"),
    STEP_ENV("a wrong master key (ask)", "MEMCHAT_MASTER_KEY=" C_WRONG_MASTER, NULL, 2,
             "does not open", ASK_ACME, "hi"),
    STEP_ENV("a malformed master key (keys list)", "MEMCHAT_MASTER_KEY=" C_BAD_MASTER, NULL, 2,
             "base64", "keys", "list", "--json"),
    STEP_ENV("a malformed master key (ask)", "MEMCHAT_MASTER_KEY=" C_BAD_MASTER, NULL, 2, "base64",
             ASK_ACME, "hi"),
    STEP_ENV("no master key", NO_ENV, NULL, 2, "no master key", "keys", "list"),

    /* a damaged keystore */
    STEP_HOOK("a damaged keystore (keys list)", keystore_damage, keystore_restore, NULL, 2,
              "damaged", "keys", "list"),
    STEP_HOOK("a damaged keystore (ask)", keystore_damage, keystore_restore, NULL, 2, "damaged",
              ASK_ACME, "hi"),
    STEP_HOOK("a damaged keystore (keys set)", keystore_damage, keystore_restore, C_TENANT_OPENAI,
              2, "damaged", "keys", "set", "--tenant", "acme", "--provider", "openai"),

    /* rm and rotate */
    STEP("keys rm", NULL, 0, "removed", "keys", "rm", "--tenant", "acme", "--provider",
         "tool:github"),
    STEP("keys rm (absent)", NULL, 1, "no key", "keys", "rm", "--tenant", "acme", "--provider",
         "tool:github"),
    STEP("keys set (tool:github again)", C_TOOL, 0, "stored the key", "keys", "set", "--tenant",
         "acme", "--provider", "tool:github"),
    STEP("keys rotate (refused: MEMCHAT_MASTER_KEY)", NULL, 2, "MEMCHAT_MASTER_KEY", "keys",
         "rotate"),
    STEP("keys rotate --passphrase", C_PASS "\n", 0, "re-encrypted 5 records", "keys", "rotate",
         "--passphrase", "--passphrase-stdin"),

    /* the passphrase */
    STEP("no passphrase (ask)", NULL, 2, "--passphrase-stdin", ASK_ACME, "hi"),
    STEP("no passphrase (keys list)", NULL, 2, "--passphrase-stdin", "keys", "list"),
    STEP("an empty passphrase", "\n", 2, "empty", "keys", "list", "--passphrase-stdin"),
    STEP("a wrong passphrase (keys list)", C_WRONG_PASS "\n", 2, "does not open", "keys", "list",
         "--passphrase-stdin"),
    STEP("a wrong passphrase (ask)", C_WRONG_PASS "\nhi", 2, "does not open", ASK_ACME,
         "--passphrase-stdin"),
    STEP("keys set with the passphrase on stdin (refused)", C_PASS "\n" C_TENANT_OPENAI, 2,
         "cannot both come from stdin", "keys", "set", "--tenant", "x", "--provider", "openai",
         "--passphrase-stdin"),
    STEP("ask --passphrase-stdin", C_PASS "\nhi", 0, REPLIED, ASK_ACME, "--passphrase-stdin"),
    STEP("chat --plain --passphrase-stdin", C_PASS "\nhello\n", 0, "mock reply", "chat", "--plain",
         "--passphrase-stdin", "--tenant", "acme"),
    STEP("keys list --passphrase-stdin", C_PASS "\n", 0, "tool:github", "keys", "list",
         "--passphrase-stdin"),

    /* back to master.key */
    STEP_ENV("keys rotate (to master.key)", NO_ENV, C_PASS "\n", 0, "re-encrypted 5 records",
             "keys", "rotate", "--passphrase-stdin"),
    STEP_ENV("ask (after rotate)", NO_ENV, NULL, 0, REPLIED, ASK_ACME, "hi"),
    STEP_ENV("keys list (after rotate)", NO_ENV, NULL, 0, "tool:github", "keys", "list"),
};

#define N_STEPS (sizeof steps / sizeof steps[0])

/* The name of an environment entry: up to '=' or the end. */
static size_t env_name_len(const char *e)
{
    return strcspn(e, "=");
}

/* e with '@' in its value replaced by the server's URL, into buf. */
static const char *env_expand(const char *e, char *buf, size_t len)
{
    const char *at = strchr(e, '@');
    if (at == NULL)
        return e;
    snprintf(buf, len, "%.*s%s%s", (int)(at - e), e, mock_url(mock), at + 1);
    return buf;
}

/* The environment of step s (base_env with its changes) into out. */
static void step_env(const struct step *s, const char **out, char bufs[][512])
{
    size_t k = 0, b = 0;
    for (size_t i = 0; i < N_BASE_ENV; i++) {
        bool replaced = false;
        for (size_t j = 0; j < 4 && s->env[j] != NULL; j++)
            replaced |= env_name_len(s->env[j]) == env_name_len(base_env[i]) &&
                        strncmp(s->env[j], base_env[i], env_name_len(base_env[i])) == 0;
        if (!replaced)
            out[k++] = env_expand(base_env[i], bufs[b++], 512);
    }
    for (size_t j = 0; j < 4 && s->env[j] != NULL; j++)
        if (strchr(s->env[j], '=') != NULL)
            out[k++] = env_expand(s->env[j], bufs[b++], 512);
    out[k] = NULL;
}

static int case_setup(void **state)
{
    mock = mock_start();
    forms_init();
    return setup(state);
}

static int case_teardown(void **state)
{
    mock_stop(mock);
    mock = NULL;
    return teardown(state);
}

/* Sends the server one request: POST path with one more header line and
 * body (logged like any request memchat makes). */
static void raw_post(const char *path, const char *header, const char *body)
{
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     path, header, strlen(body), body);
    assert_true(n > 0 && (size_t)n < sizeof req);
    free(mock_raw_exchange(mock, req, (size_t)n, NULL));
}

/* The scanner finds every form of every canary planted in a file of the
 * data dir (and says which canary, how encoded, and where), on stdout and
 * stderr, and in a request outside its own auth header (another header;
 * the auth header of another server), while a key in its own auth header
 * is counted as a legitimate send, not a leak. Without this the canary
 * test could pass by reading nothing. */
static void the_scanner_finds_every_planted_form_in_every_place(void **state)
{
    (void)state;
    char where[1024] = "";
    assert_int_equal(mkdir(fx.data, 0700), 0);
    assert_false(scan_places(NULL, NULL, where, sizeof where));
    for (size_t c = 0; c < N_CANARIES; c++) {
        assert_true(n_forms[c] >= 4); /* itself and base64 at three offsets */
        for (size_t f = 0; f < n_forms[c]; f++) {
            char text[256];
            snprintf(text, sizeof text, "xx%syy", forms[c][f].text);
            free(tu_write_file(fx.data, "scratch", text));
            where[0] = '\0';
            if (!scan_places(NULL, NULL, where, sizeof where))
                fail_msg("planted %s (%s) was not found", canaries[c].name, forms[c][f].how);
            assert_non_null(strstr(where, canaries[c].name));
            assert_non_null(strstr(where, "a file of the data dir"));
        }
    }
    remove_home_file(fx.data, "scratch");
    assert_false(scan_places(NULL, NULL, where, sizeof where));

    /* The raw master key inside binary data, in a named place. */
    char blob[64] = {0};
    memcpy(blob + 7, C_MASTER_RAW, strlen(C_MASTER_RAW));
    char db[4096];
    snprintf(db, sizeof db, "%s/memchat.db-wal", fx.data);
    FILE *f = fopen(db, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(blob, 1, sizeof blob, f), sizeof blob);
    assert_int_equal(fclose(f), 0);
    assert_true(scan_places(NULL, NULL, where, sizeof where));
    assert_non_null(strstr(where, "MEMCHAT_MASTER_KEY (decoded)"));
    assert_non_null(strstr(where, "memchat.db-wal"));
    assert_int_equal(unlink(db), 0);

    struct run r = {.out = strdup("ok " C_OPIK), .err = strdup("")};
    r.out_len = strlen(r.out);
    assert_true(scan_places(&r, NULL, where, sizeof where));
    assert_non_null(strstr(where, "OPIK_API_KEY"));
    assert_non_null(strstr(where, "stdout"));
    run_free(&r);
    r = (struct run){.out = strdup(""), .err = strdup("error: " C_WRONG_PASS "\n")};
    r.err_len = strlen(r.err);
    assert_true(scan_places(&r, NULL, where, sizeof where));
    assert_non_null(strstr(where, "stderr"));
    run_free(&r);

    /* Requests: the key in its own header is a send, elsewhere a leak. */
    size_t sends[N_CANARIES] = {0};
    raw_post("/v1/chat/completions", "Authorization: Bearer " C_GLOBAL_OPENAI, "{}");
    assert_false(scan_places(NULL, sends, where, sizeof where));
    assert_int_equal(sends[0], 1);
    raw_post("/v1/chat/completions", "X-Debug: " C_GLOBAL_OPENAI, "{}");
    assert_true(scan_places(NULL, NULL, where, sizeof where));
    assert_non_null(strstr(where, "x-debug header"));
    assert_non_null(strstr(where, canaries[0].name));

    mock_stop(mock);
    mock = mock_start();
    raw_post("/api/v1/private/traces/batch", "Authorization: " C_TENANT_OPENAI, "{}");
    assert_true(scan_places(NULL, NULL, where, sizeof where));
    assert_non_null(strstr(where, canaries[2].name));
    assert_non_null(strstr(where, "authorization header of a request to /api/v1/private"));

    mock_stop(mock);
    mock = mock_start();
    raw_post("/v1/messages", "X-Api-Key: " C_GLOBAL_ANTHROPIC,
             "{\"system\":\"" C_TENANT_ANTHROPIC "\"}");
    assert_true(scan_places(NULL, NULL, where, sizeof where));
    assert_non_null(strstr(where, canaries[3].name));
    assert_non_null(strstr(where, "path or body"));
}

/* Every step of the table runs with its expected exit code and reaches its
 * path (its text in the output); after each, no canary is in any place. In
 * the end every file row that must exist does (the scan read them), and
 * every key meant for a server reached it in its own auth header. */
static void no_canary_leaks_from_any_verb_error_path_or_log(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_STEPS; i++) {
        const struct step *s = &steps[i];
        const char *env[N_BASE_ENV + 8];
        char bufs[N_BASE_ENV + 8][512];
        step_env(s, env, bufs);
        if (s->before != NULL)
            s->before();
        struct run r;
        run_memchat(&r, s->in, env, s->args);
        if (s->after != NULL)
            s->after();
        if (s->exit_code >= 0 && r.status != s->exit_code)
            fail_msg("step '%s': exit %d, want %d\nstdout: %s\nstderr: %s", s->name, r.status,
                     s->exit_code, r.out, r.err);
        if (s->output != NULL && strstr(r.out, s->output) == NULL &&
            strstr(r.err, s->output) == NULL)
            fail_msg("step '%s' did not say '%s'\nstdout: %s\nstderr: %s", s->name, s->output,
                     r.out, r.err);
        char where[1024] = "";
        if (scan_places(&r, NULL, where, sizeof where))
            fail_msg("step '%s' leaked %s", s->name, where);
        run_free(&r);
    }
    for (size_t i = 0; i < N_PLACES; i++) {
        if (!places[i].must_exist)
            continue;
        char *p = place_path(&places[i]);
        if (access(p, F_OK) != 0)
            fail_msg("%s (%s) does not exist: the scan proved nothing there", places[i].name, p);
        free(p);
    }
    size_t sends[N_CANARIES] = {0};
    char where[1024] = "";
    assert_false(scan_requests(sends, where, sizeof where));
    for (size_t c = 0; c < N_CANARIES; c++)
        if (canaries[c].must_send && sends[c] == 0)
            fail_msg("%s never reached %s in its %s header", canaries[c].name, canaries[c].route,
                     canaries[c].header);
}

static int secrets_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_scanner_finds_every_planted_form_in_every_place,
                                        case_setup, case_teardown),
        cmocka_unit_test_setup_teardown(no_canary_leaks_from_any_verb_error_path_or_log, case_setup,
                                        case_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    return harness_without_terminal(secrets_tests);
}
