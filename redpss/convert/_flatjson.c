/*
 * JSON2CSV's parser for the usual NDJSON block: flat records whose fields the file's first block named and typed.
 *
 * pyarrow's JSON reader costs more CPU per MB than polars' whole conversion (docs/decisions.md, "JSON2CSV NDJSON
 * speed"). This parser reads only what it can read exactly as pyarrow would with the same explicit schema, and
 * declines everything else (returns None), so the caller hands that block to pyarrow unchanged:
 *
 *   - one JSON object per line ('\n' or "\r\n" ends a line; any other '\r', a blank line, two records on a line:
 *     declined);
 *   - keys without escapes, each one of the given fields, none twice in a record (a new field: declined);
 *   - values of the field's kind or null: int64 (an integer that fits), double (any number whose value a double
 *     holds without overflow or underflow, correctly rounded), bool, string (escapes decoded; \u0000 and lone
 *     surrogates declined); a nested value, a control character in a string, anything else: declined.
 *
 * The bytes must be valid UTF-8 already (the caller checks the block before any parser sees it). The parse runs
 * without the GIL, so blocks are parsed on several cores at once. Every read is bounded by the block's end; every
 * write by a capacity counted before it (tests compare its tables with pyarrow's and feed it random bytes).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum kind { KIND_INT64 = 'i', KIND_DOUBLE = 'd', KIND_BOOL = 'b', KIND_STRING = 's' };

/* The outcome of a parse: DONE, or why not. */
enum outcome { DONE = 0, DECLINED = 1, NO_MEMORY = 2 };

#define MAX_NUMBER_TEXT 96 /* a longer number is declined (pyarrow's answer for it is not worth a slow path) */

/* A larger written exponent is declined: pyarrow's parser (RapidJSON) refuses one beyond 308 plus the fraction's
 * digits as too big, even in 0E400 (a value that overflows a double is declined anyway). */
#define MAX_EXPONENT 308

static locale_t c_locale; /* strtod_l's: the decimal point is '.' whatever the process's locale */

/* ---- a buffer owned by C, handed to Python (and on to pyarrow) without a copy ---- */

typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t size;
} OwnedBuffer;

static void owned_dealloc(OwnedBuffer *self) {
    free(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int owned_getbuffer(OwnedBuffer *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->size, 1, flags);
}

static PyBufferProcs owned_as_buffer = {.bf_getbuffer = (getbufferproc)owned_getbuffer};

static PyTypeObject OwnedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "redpss.convert._flatjson.OwnedBuffer",
    .tp_basicsize = sizeof(OwnedBuffer),
    .tp_dealloc = (destructor)owned_dealloc,
    .tp_as_buffer = &owned_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Bytes allocated by the parser, read-only, freed with the object.",
};

/* Takes `data` (malloc'd; NULL for size 0, then a byte is allocated: pyarrow takes no NULL buffer); frees it if
 * the object cannot be made. */
static PyObject *owned(char *data, Py_ssize_t size) {
    if (data == NULL && (data = malloc(1)) == NULL) return PyErr_NoMemory();
    OwnedBuffer *self = PyObject_New(OwnedBuffer, &OwnedBufferType);
    if (self == NULL) {
        free(data);
        return NULL;
    }
    self->data = data;
    self->size = size;
    return (PyObject *)self;
}

/* ---- columns ---- */

typedef struct {
    const char *name;
    Py_ssize_t name_size; /* -1: a name no key written without escapes can match */
    char kind;
    uint8_t *validity; /* one bit per row, set for a value */
    char *values;      /* int64/double: 8 bytes per row; bool: one bit per row; string: int32 offsets, rows + 1 */
    char *text;        /* string: the values' bytes */
    size_t text_size, text_capacity;
    int64_t valid;     /* rows with a value */
    int64_t seen_row;  /* the last row a value was read for: a key twice in a record is declined */
} Column;

typedef struct {
    const char *at, *end;
    Column *columns;
    Py_ssize_t count;
    int64_t row, capacity; /* rows read, rows the buffers hold */
} Parser;

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static inline void skip_blanks(Parser *p) {
    while (p->at < p->end && is_blank(*p->at)) p->at++;
}

static int take(Parser *p, char c) {
    if (p->at < p->end && *p->at == c) {
        p->at++;
        return 1;
    }
    return 0;
}

static int take_word(Parser *p, const char *word, size_t size) {
    if ((size_t)(p->end - p->at) >= size && memcmp(p->at, word, size) == 0) {
        p->at += size;
        return 1;
    }
    return 0;
}

static void set_bit(uint8_t *bits, int64_t at) { bits[at >> 3] |= (uint8_t)(1u << (at & 7)); }

/* Whether `name` would be written in JSON as it is: no quote, backslash or control character (else its key is
 * escaped in the text, and a record holding it is declined: it never matches). */
static int plain_name(const char *name, Py_ssize_t size) {
    for (Py_ssize_t n = 0; n < size; n++) {
        unsigned char c = (unsigned char)name[n];
        if (c == '"' || c == '\\' || c < 0x20) return 0;
    }
    return 1;
}

/* memcmp's answer for the short texts of keys without its call */
static inline int same_bytes(const char *a, const char *b, Py_ssize_t size) {
    for (; size >= 8; a += 8, b += 8, size -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; size > 0; a++, b++, size--) {
        if (*a != *b) return 0;
    }
    return 1;
}

/* Whether the key at p->at (after its opening quote) is the column's name; past its closing quote if so. */
static inline int key_is(Parser *p, const Column *column) {
    Py_ssize_t size = column->name_size;
    if (size < 0 || p->end - p->at <= size || p->at[size] != '"' || !same_bytes(p->at, column->name, size)) return 0;
    p->at += size + 1;
    return 1;
}

/* The column named by the key at p->at (after its opening quote), or NULL; `guess` is tried first (keys mostly come
 * in the same order in every record). A plain name is followed by the closing quote, so comparing the text with
 * each name is enough. */
static Column *key_column(Parser *p, Py_ssize_t guess) {
    for (Py_ssize_t n = 0; n < p->count; n++) {
        Column *column = &p->columns[(guess + n) % p->count];
        if (key_is(p, column)) return column;
    }
    return NULL;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* \uXXXX at p->at (after the 'u'): its value, or -1 */
static long hex4(Parser *p) {
    if (p->end - p->at < 4) return -1;
    long value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(p->at[i]);
        if (digit < 0) return -1;
        value = value * 16 + digit;
    }
    p->at += 4;
    return value;
}

static enum outcome reserve_text(Column *column, size_t more) {
    size_t needed = column->text_size + more;
    if (needed > INT32_MAX) return DECLINED; /* string offsets are int32 */
    if (needed <= column->text_capacity && column->text != NULL) return DONE; /* (memcpy takes no NULL, even for 0) */
    size_t capacity = column->text_capacity ? column->text_capacity : 4096;
    while (capacity < needed) capacity *= 2;
    char *grown = realloc(column->text, capacity);
    if (grown == NULL) return NO_MEMORY;
    column->text = grown;
    column->text_capacity = capacity;
    return DONE;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* The first byte from `at` on that is a quote, a backslash or a control character, or `end`: eight bytes at a time
 * (each kind found by the usual word tricks: a byte equal to c is a zero byte of word ^ c*ONES, a byte below 0x20 a
 * borrow out of word - 0x20*ONES), the last few one by one. */
static inline const char *string_stop(const char *at, const char *end) {
    while (end - at >= 8) {
        uint64_t word;
        memcpy(&word, at, 8);
        uint64_t quote = word ^ (ONES * '"');
        uint64_t backslash = word ^ (ONES * '\\');
        uint64_t special = ((word - ONES * 0x20) & ~word) | ((quote - ONES) & ~quote) | ((backslash - ONES) & ~backslash);
        if (special & HIGHS) break;
        at += 8;
    }
    while (at < end && (unsigned char)*at >= 0x20 && *at != '"' && *at != '\\') at++;
    return at;
}

/* A string value at p->at (after its opening quote), appended to the column's text. An escape's UTF-8 is never
 * longer than the escape itself (\uXXXX: 6 bytes for at most 3, a pair's 12 for 4), so the text between the quotes
 * is the most the value can need. */
static enum outcome read_string(Parser *p, Column *column) {
    const char *start = p->at;
    const char *plain = string_stop(start, p->end);
    enum outcome reserved;
    if (plain < p->end && *plain == '"') { /* the usual value: no escape */
        reserved = reserve_text(column, (size_t)(plain - start));
        if (reserved != DONE) return reserved;
        memcpy(column->text + column->text_size, start, (size_t)(plain - start));
        column->text_size += (size_t)(plain - start);
        p->at = plain + 1;
        return DONE;
    }
    const char *scan = plain;
    const char *close;
    for (;;) { /* the closing quote: the first not escaped */
        close = memchr(scan, '"', (size_t)(p->end - scan));
        if (close == NULL) return DECLINED;
        const char *back = close;
        while (back > start && back[-1] == '\\') back--;
        if (((close - back) & 1) == 0) break;
        scan = close + 1;
    }
    reserved = reserve_text(column, (size_t)(close - start));
    if (reserved != DONE) return reserved;
    char *out = column->text + column->text_size;
    const char *at = plain;
    memcpy(out, start, (size_t)(at - start));
    out += at - start;
    while (at < close) {
        unsigned char c = (unsigned char)*at;
        if (c >= 0x20 && c != '\\') {
            *out++ = (char)c;
            at++;
            continue;
        }
        if (c < 0x20) return DECLINED; /* a control character must be escaped in JSON */
        at++;                          /* the backslash: at < close, since the closing quote is not escaped */
        switch (*at++) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '/': *out++ = '/'; break;
            case 'b': *out++ = '\b'; break;
            case 'f': *out++ = '\f'; break;
            case 'n': *out++ = '\n'; break;
            case 'r': *out++ = '\r'; break;
            case 't': *out++ = '\t'; break;
            case 'u': {
                p->at = at;
                long code = hex4(p);
                if (code <= 0 || (code >= 0xDC00 && code <= 0xDFFF)) return DECLINED; /* \u0000, a lone low half */
                if (code >= 0xD800 && code <= 0xDBFF) {
                    if (!take_word(p, "\\u", 2)) return DECLINED;
                    long low = hex4(p);
                    if (low < 0xDC00 || low > 0xDFFF) return DECLINED;
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                }
                if (p->at > close) return DECLINED;
                at = p->at;
                if (code < 0x80) {
                    *out++ = (char)code;
                } else if (code < 0x800) {
                    *out++ = (char)(0xC0 | (code >> 6));
                    *out++ = (char)(0x80 | (code & 0x3F));
                } else if (code < 0x10000) {
                    *out++ = (char)(0xE0 | (code >> 12));
                    *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
                    *out++ = (char)(0x80 | (code & 0x3F));
                } else {
                    *out++ = (char)(0xF0 | (code >> 18));
                    *out++ = (char)(0x80 | ((code >> 12) & 0x3F));
                    *out++ = (char)(0x80 | ((code >> 6) & 0x3F));
                    *out++ = (char)(0x80 | (code & 0x3F));
                }
                break;
            }
            default: return DECLINED;
        }
    }
    column->text_size = (size_t)(out - column->text);
    p->at = close + 1;
    return DONE;
}

/* The extent of a JSON number at p->at: sign, digits, fraction, exponent, as the grammar has them. */
typedef struct {
    const char *start, *end;
    int negative, integral;
    uint64_t mantissa; /* the first 19 significant digits */
    int digits;        /* significant digits, counted up to 20 (a number with more than 19 is parsed by strtod) */
    long exponent;     /* the value is mantissa * 10^exponent when digits <= 19 */
} Number;

/* Counts stop at 20: all that matters is whether there are more than 19 (a line of 2^31 digits would overflow) */
static inline void count_digit(Number *n) {
    if (n->digits < 20) n->digits++;
}

static int scan_number(Parser *p, Number *n) {
    const char *at = p->at, *end = p->end;
    n->start = at;
    n->negative = at < end && *at == '-';
    if (n->negative) at++;
    if (at >= end || *at < '0' || *at > '9') return 0;
    n->mantissa = 0;
    n->digits = 0;
    n->exponent = 0;
    n->integral = 1;
    if (*at == '0') {
        at++;
        if (at < end && *at >= '0' && *at <= '9') return 0; /* a leading zero */
    } else {
        for (; at < end && *at >= '0' && *at <= '9'; at++) {
            if (n->digits < 19) {
                n->mantissa = n->mantissa * 10 + (uint64_t)(*at - '0');
            } else {
                n->exponent++;
            }
            count_digit(n);
        }
    }
    if (at < end && *at == '.') {
        n->integral = 0;
        at++;
        if (at >= end || *at < '0' || *at > '9') return 0;
        for (; at < end && *at >= '0' && *at <= '9'; at++) {
            if (n->digits == 0 && *at == '0') {
                n->exponent--; /* a zero before the first significant digit */
            } else if (n->digits < 19) {
                n->mantissa = n->mantissa * 10 + (uint64_t)(*at - '0');
                n->exponent--;
                count_digit(n);
            } else {
                count_digit(n);
            }
        }
    }
    if (at < end && (*at == 'e' || *at == 'E')) {
        n->integral = 0;
        at++;
        int minus = at < end && *at == '-';
        if (at < end && (*at == '-' || *at == '+')) at++;
        if (at >= end || *at < '0' || *at > '9') return 0;
        long written = 0;
        for (; at < end && *at >= '0' && *at <= '9'; at++) {
            if (written < 100000) written = written * 10 + (*at - '0');
        }
        if (!minus && written > MAX_EXPONENT) return 0;
        n->exponent += minus ? -written : written;
    }
    n->end = at;
    p->at = at;
    return 1;
}

static enum outcome read_int64(Parser *p, int64_t *value) {
    Number n;
    if (!scan_number(p, &n) || !n.integral || n.digits > 19) return DECLINED;
    if (n.negative) {
        if (n.mantissa > (uint64_t)INT64_MAX + 1) return DECLINED;
        *value = n.mantissa == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n.mantissa;
    } else {
        if (n.mantissa > (uint64_t)INT64_MAX) return DECLINED;
        *value = (int64_t)n.mantissa;
    }
    return DONE;
}

static const double EXACT_POWERS[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static enum outcome read_double(Parser *p, double *value) {
    Number n;
    if (!scan_number(p, &n)) return DECLINED;
    if (n.digits <= 19 && n.mantissa < ((uint64_t)1 << 53) && n.exponent >= -22 && n.exponent <= 22) {
        /* both factors exact, so the one IEEE operation rounds correctly (Clinger's fast path) */
        double exact = (double)n.mantissa;
        exact = n.exponent < 0 ? exact / EXACT_POWERS[-n.exponent] : exact * EXACT_POWERS[n.exponent];
        *value = n.negative ? -exact : exact;
        return DONE;
    }
    size_t size = (size_t)(n.end - n.start);
    if (size >= MAX_NUMBER_TEXT) return DECLINED;
    char text[MAX_NUMBER_TEXT];
    memcpy(text, n.start, size);
    text[size] = '\0';
    char *stop;
    errno = 0;
    double parsed = strtod_l(text, &stop, c_locale);
    if (errno != 0 || stop != text + size) return DECLINED; /* overflow, underflow: pyarrow's answer is its own */
    *value = parsed;
    return DONE;
}

static enum outcome read_value(Parser *p, Column *column) {
    int64_t row = p->row;
    if (take_word(p, "null", 4)) return DONE;
    enum outcome done = DONE;
    switch (column->kind) {
        case KIND_INT64: done = read_int64(p, (int64_t *)column->values + row); break;
        case KIND_DOUBLE: done = read_double(p, (double *)column->values + row); break;
        case KIND_BOOL:
            if (take_word(p, "true", 4)) {
                set_bit((uint8_t *)column->values, row);
            } else if (!take_word(p, "false", 5)) {
                done = DECLINED;
            }
            break;
        case KIND_STRING:
            done = take(p, '"') ? read_string(p, column) : DECLINED;
            break;
        default: done = DECLINED;
    }
    if (done == DONE) {
        set_bit(column->validity, row);
        column->valid++;
    }
    return done;
}

/* One line holding one object; p->at is at its start. */
static enum outcome read_record(Parser *p) {
    int64_t row = p->row;
    skip_blanks(p);
    if (!take(p, '{')) return DECLINED;
    skip_blanks(p);
    Py_ssize_t guess = 0;
    if (!take(p, '}')) {
        for (;;) {
            if (!take(p, '"')) return DECLINED;
            Column *column = key_column(p, guess);
            if (column == NULL || column->seen_row == row) return DECLINED;
            column->seen_row = row;
            guess = (column - p->columns) + 1;
            skip_blanks(p);
            if (!take(p, ':')) return DECLINED;
            skip_blanks(p);
            enum outcome done = read_value(p, column);
            if (done != DONE) return done;
            skip_blanks(p);
            if (take(p, '}')) break;
            if (!take(p, ',')) return DECLINED;
            skip_blanks(p);
        }
    }
    skip_blanks(p);
    take(p, '\r'); /* a CRLF line end (Windows); a CR alone is declined by what follows */
    if (p->at < p->end && !take(p, '\n')) return DECLINED; /* something after the object on its line */
    for (Py_ssize_t n = 0; n < p->count; n++) {
        Column *column = &p->columns[n];
        if (column->kind == KIND_STRING) ((int32_t *)column->values)[row + 1] = (int32_t)column->text_size;
    }
    p->row++;
    return DONE;
}

/* `pointer` grown from `old` to `new` bytes, the new ones zeroed; NULL (and `pointer` kept) without memory. */
static void *grown(void *pointer, size_t old, size_t new) {
    char *bigger = realloc(pointer, new);
    if (bigger != NULL) memset(bigger + old, 0, new - old);
    return bigger;
}

/* The column's buffers made to hold `rows` rows instead of `held` (0: none yet). */
static enum outcome hold_rows(Column *column, int64_t held, int64_t rows) {
    size_t old_bits = (size_t)(held + 7) / 8, bits = (size_t)(rows + 7) / 8;
    size_t old_values, values;
    switch (column->kind) {
        case KIND_INT64:
        case KIND_DOUBLE: old_values = (size_t)held * 8, values = (size_t)rows * 8; break;
        case KIND_BOOL: old_values = old_bits, values = bits; break;
        default: old_values = (size_t)(held + 1) * 4, values = (size_t)(rows + 1) * 4; break;
    }
    if (held == 0) old_bits = old_values = 0;
    void *validity = grown(column->validity, old_bits, bits);
    if (validity == NULL) return NO_MEMORY;
    column->validity = validity;
    void *more = grown(column->values, old_values, values);
    if (more == NULL) return NO_MEMORY;
    column->values = more;
    return DONE;
}

/* Room for one more row: the buffers start at a row per 256 bytes of the block and double when full (counting the
 * lines first was a pass over the block of its own). */
static enum outcome room_for_row(Parser *p) {
    if (p->row < p->capacity) return DONE;
    int64_t rows = p->capacity ? p->capacity * 2 : (int64_t)((p->end - p->at) / 256) + 16;
    for (Py_ssize_t n = 0; n < p->count; n++) {
        if (hold_rows(&p->columns[n], p->capacity, rows) != DONE) return NO_MEMORY;
    }
    p->capacity = rows;
    return DONE;
}

static enum outcome parse(Parser *p) {
    while (p->at < p->end) {
        enum outcome done = room_for_row(p);
        if (done == DONE) done = read_record(p);
        if (done != DONE) return done;
    }
    return p->row ? DONE : DECLINED; /* no record: pyarrow's answer for blanks is its own */
}

static void free_columns(Column *columns, Py_ssize_t count) {
    for (Py_ssize_t n = 0; n < count; n++) {
        free(columns[n].validity);
        free(columns[n].values);
        free(columns[n].text);
    }
    PyMem_Free(columns);
}

/* (validity or None, values, text or None, null count) of one column; its buffers are handed over (NULLed). */
static PyObject *column_tuple(Column *column, int64_t rows) {
    int64_t nulls = rows - column->valid;
    size_t bits = (size_t)(rows + 7) / 8;
    PyObject *validity = Py_None, *values = NULL, *text = Py_None;
    Py_INCREF(Py_None);
    Py_INCREF(Py_None);
    if (nulls > 0) {
        Py_DECREF(Py_None);
        validity = owned((char *)column->validity, (Py_ssize_t)bits);
        column->validity = NULL;
        if (validity == NULL) goto failed;
    }
    Py_ssize_t size = column->kind == KIND_BOOL     ? (Py_ssize_t)bits
                      : column->kind == KIND_STRING ? (Py_ssize_t)(rows + 1) * 4
                                                    : (Py_ssize_t)rows * 8;
    values = owned(column->values, size);
    column->values = NULL;
    if (values == NULL) goto failed;
    if (column->kind == KIND_STRING) {
        Py_DECREF(Py_None);
        text = owned(column->text, (Py_ssize_t)column->text_size);
        column->text = NULL;
        if (text == NULL) goto failed;
    }
    return Py_BuildValue("(NNNL)", validity, values, text, (long long)nulls);
failed:
    Py_XDECREF(validity);
    Py_XDECREF(values);
    Py_XDECREF(text);
    return NULL;
}

static PyObject *flat_records(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer data;
    PyObject *names;
    const char *kinds;
    Py_ssize_t kinds_size;
    if (!PyArg_ParseTuple(args, "y*O!y#", &data, &PyTuple_Type, &names, &kinds, &kinds_size)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    Column *columns = NULL;
    if (count != kinds_size || count == 0) {
        PyErr_SetString(PyExc_ValueError, "one kind per name, and one name at least");
        goto done;
    }
    columns = PyMem_Calloc((size_t)count, sizeof(Column));
    if (columns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *name = PyTuple_GET_ITEM(names, n);
        if (!PyBytes_Check(name) || strchr("idbs", kinds[n]) == NULL || kinds[n] == '\0') {
            PyErr_SetString(PyExc_ValueError, "names are bytes, kinds one of i d b s");
            goto done;
        }
        columns[n].name = PyBytes_AS_STRING(name);
        columns[n].name_size = PyBytes_GET_SIZE(name);
        if (!plain_name(columns[n].name, columns[n].name_size)) columns[n].name_size = -1;
        columns[n].kind = kinds[n];
        columns[n].seen_row = -1;
    }
    Parser parser = {data.buf, (const char *)data.buf + data.len, columns, count, 0, 0};
    enum outcome outcome;
    Py_BEGIN_ALLOW_THREADS
    outcome = parse(&parser);
    Py_END_ALLOW_THREADS
    if (outcome == NO_MEMORY) {
        PyErr_NoMemory();
        goto done;
    }
    if (outcome == DECLINED) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    PyObject *list = PyList_New(count);
    if (list == NULL) goto done;
    for (Py_ssize_t n = 0; n < count; n++) {
        PyObject *item = column_tuple(&columns[n], parser.row);
        if (item == NULL) {
            Py_DECREF(list);
            goto done;
        }
        PyList_SET_ITEM(list, n, item);
    }
    result = Py_BuildValue("(LN)", (long long)parser.row, list);
done:
    if (columns != NULL) free_columns(columns, count);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"flat_records", flat_records, METH_VARARGS,
     "flat_records(data, names, kinds) -> (rows, [(validity, values, text, nulls), ...]) or None.\n\n"
     "The NDJSON block `data` (valid UTF-8) read into one column per name (UTF-8 bytes) of the kind at the same\n"
     "place in `kinds` (b'i' int64, b'd' double, b'b' bool, b's' string); None when a record is not a flat object\n"
     "of those fields and kinds, exactly as pyarrow would read it with them as its explicit schema."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_flatjson",
    .m_doc = "JSON2CSV's parser of flat NDJSON records (see flat_records).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__flatjson(void) {
    if (c_locale == (locale_t)0) {
        c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
        if (c_locale == (locale_t)0) return PyErr_NoMemory();
    }
    if (PyType_Ready(&OwnedBufferType) < 0) return NULL;
    return PyModule_Create(&module_definition);
}
