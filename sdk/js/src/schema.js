// The params schema builder `p`: each call yields both the JSON Schema that
// `describe()` publishes and the check `execute()` runs on the task's params, so
// the two cannot drift. index.d.ts infers the TypeScript type of `params` from the
// same calls.
//
// The JSON Schema stays inside the subset the host validates (type, enum,
// properties, required, additionalProperties, items, minItems, maxItems, minimum,
// maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength), plus
// `description`, `default` and `pattern`, which the host ignores and the SDK checks.

/** Why params were refused; the operator turns it into a fatal task error. */
export class ParamsError extends Error {
  /**
   * @param {string[]} path keys and `[index]` steps from the params root
   * @param {string} problem
   */
  constructor(path, problem) {
    const where = path.length === 0 ? '' : ` at \`${formatPath(path)}\``;
    super(`invalid params${where}: ${problem}`);
    this.name = 'ParamsError';
    this.path = formatPath(path);
  }
}

function formatPath(path) {
  return path.map((step, i) => (step.startsWith('[') || i === 0 ? step : `.${step}`)).join('');
}

/** The JSON type name of a value, with `integer` for whole numbers. */
function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function quote(value) {
  return JSON.stringify(value);
}

function plural(count, noun) {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

/**
 * One node of a params schema. `check` returns the value to hand the operator
 * (with defaults filled in) or throws a ParamsError.
 */
export class Schema {
  #json;
  #check;

  /**
   * @param {object} json the JSON Schema of this node, without `default`
   * @param {(value: unknown, path: string[]) => unknown} check
   * @param {{ description?: string, default?: unknown }} [options]
   * @param {boolean} [isOptional]
   */
  constructor(json, check, options = {}, isOptional = false) {
    this.#check = check;
    this.isOptional = isOptional;
    this.hasDefault = options.default !== undefined;
    this.#json = { ...json };
    if (options.description !== undefined) this.#json.description = String(options.description);
    if (this.hasDefault) {
      // A default is checked once here, so a wrong one fails where it is written
      // (at build time, when the component's top level is evaluated), not in a try.
      try {
        check(options.default, []);
      } catch (error) {
        throw new TypeError(`default ${quote(options.default)} does not match its own schema: ${error.message}`);
      }
      this.#json.default = structuredCopy(options.default);
    }
    Object.freeze(this);
  }

  /** The JSON Schema of this node. */
  get jsonSchema() {
    return structuredCopy(this.#json);
  }

  /** The same schema, for a property that may be left out. */
  optional() {
    const { default: value, description } = this.#json;
    return new Schema(stripped(this.#json), this.#check, { default: value, description }, true);
  }

  /**
   * Checks `value` (present) at `path`; returns it with defaults filled in.
   * @param {unknown} value
   * @param {string[]} [path]
   */
  parse(value, path = []) {
    return this.#check(value, path);
  }

  /** The value a missing property takes: a fresh copy of the default. */
  defaultValue() {
    return structuredCopy(this.#json.default);
  }
}

function stripped(json) {
  const { default: _default, description: _description, ...rest } = json;
  return rest;
}

// Defaults and schemas are JSON by construction, so a JSON round trip is a deep
// copy that works in every JS engine the SDK runs on.
function structuredCopy(value) {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

function expectType(value, path, expected) {
  const actual = typeName(value);
  const matches =
    expected === 'number' ? typeof value === 'number' && Number.isFinite(value) : actual === expected;
  if (!matches) {
    // A fraction where a whole number is expected is shown, since `number`
    // alone would not say what is wrong with it.
    const got = expected === 'integer' && actual === 'number' ? `number ${value}` : actual;
    throw new ParamsError(path, `expected ${expected}, got ${got}`);
  }
}

function checkBounds(value, path, options) {
  const { minimum, maximum, exclusiveMinimum, exclusiveMaximum } = options;
  if (minimum !== undefined && value < minimum) {
    throw new ParamsError(path, `expected at least ${minimum}, got ${value}`);
  }
  if (maximum !== undefined && value > maximum) {
    throw new ParamsError(path, `expected at most ${maximum}, got ${value}`);
  }
  if (exclusiveMinimum !== undefined && value <= exclusiveMinimum) {
    throw new ParamsError(path, `expected more than ${exclusiveMinimum}, got ${value}`);
  }
  if (exclusiveMaximum !== undefined && value >= exclusiveMaximum) {
    throw new ParamsError(path, `expected less than ${exclusiveMaximum}, got ${value}`);
  }
}

function pick(options, keys) {
  const json = {};
  for (const key of keys) if (options[key] !== undefined) json[key] = options[key];
  return json;
}

const NUMBER_KEYWORDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];

function string(options = {}) {
  const pattern = options.pattern === undefined ? undefined : new RegExp(options.pattern, 'u');
  const json = { type: 'string', ...pick(options, ['minLength', 'maxLength']) };
  if (pattern) json.pattern = options.pattern;
  return new Schema(
    json,
    (value, path) => {
      expectType(value, path, 'string');
      // Counted in characters (code points), as the host counts them.
      const length = [...value].length;
      if (options.minLength !== undefined && length < options.minLength) {
        throw new ParamsError(path, `expected at least ${plural(options.minLength, 'character')}, got ${length}`);
      }
      if (options.maxLength !== undefined && length > options.maxLength) {
        throw new ParamsError(path, `expected at most ${plural(options.maxLength, 'character')}, got ${length}`);
      }
      if (pattern && !pattern.test(value)) {
        throw new ParamsError(path, `expected a string matching \`${options.pattern}\`, got ${quote(value)}`);
      }
      return value;
    },
    options,
  );
}

function integer(options = {}) {
  return new Schema(
    { type: 'integer', ...pick(options, NUMBER_KEYWORDS) },
    (value, path) => {
      expectType(value, path, 'integer');
      checkBounds(value, path, options);
      return value;
    },
    options,
  );
}

function number(options = {}) {
  return new Schema(
    { type: 'number', ...pick(options, NUMBER_KEYWORDS) },
    (value, path) => {
      expectType(value, path, 'number');
      checkBounds(value, path, options);
      return value;
    },
    options,
  );
}

function boolean(options = {}) {
  return new Schema(
    { type: 'boolean' },
    (value, path) => {
      expectType(value, path, 'boolean');
      return value;
    },
    options,
  );
}

function enumOf(values, options = {}) {
  if (!Array.isArray(values) || values.length === 0) {
    throw new TypeError('p.enum takes a non-empty array of values');
  }
  const json = { enum: [...values] };
  if (values.every((v) => typeof v === 'string')) json.type = 'string';
  return new Schema(
    json,
    (value, path) => {
      if (!values.includes(value)) {
        throw new ParamsError(path, `expected one of ${values.map(quote).join(', ')}, got ${quote(value) ?? typeName(value)}`);
      }
      return value;
    },
    options,
  );
}

function any(options = {}) {
  return new Schema({}, (value) => value, options);
}

function array(items, options = {}) {
  assertSchema(items, 'p.array');
  return new Schema(
    { type: 'array', items: items.jsonSchema, ...pick(options, ['minItems', 'maxItems']) },
    (value, path) => {
      expectType(value, path, 'array');
      if (options.minItems !== undefined && value.length < options.minItems) {
        throw new ParamsError(path, `expected at least ${plural(options.minItems, 'item')}, got ${value.length}`);
      }
      if (options.maxItems !== undefined && value.length > options.maxItems) {
        throw new ParamsError(path, `expected at most ${plural(options.maxItems, 'item')}, got ${value.length}`);
      }
      return value.map((item, i) => items.parse(item, [...path, `[${i}]`]));
    },
    options,
  );
}

function record(values, options = {}) {
  assertSchema(values, 'p.record');
  return new Schema(
    { type: 'object', additionalProperties: values.jsonSchema },
    (value, path) => {
      expectType(value, path, 'object');
      const out = {};
      for (const [key, item] of Object.entries(value)) out[key] = values.parse(item, [...path, key]);
      return out;
    },
    options,
  );
}

function object(shape, options = {}) {
  for (const [key, schema] of Object.entries(shape)) assertSchema(schema, `p.object property \`${key}\``);
  const keys = Object.keys(shape);
  const properties = {};
  for (const key of keys) properties[key] = shape[key].jsonSchema;
  const required = keys.filter((key) => !shape[key].isOptional && !shape[key].hasDefault);
  const json = { type: 'object', properties };
  if (required.length > 0) json.required = required;
  // Unknown keys are refused, as the Rust SDK's `deny_unknown_fields` does: a
  // misspelt optional param would otherwise be silently ignored.
  json.additionalProperties = false;
  return new Schema(
    json,
    (value, path) => {
      expectType(value, path, 'object');
      for (const key of Object.keys(value)) {
        if (!Object.hasOwn(shape, key)) {
          const expected =
            keys.length === 0
              ? 'there are no fields'
              : `expected ${keys.length === 1 ? '' : 'one of '}${keys.map((k) => `\`${k}\``).join(', ')}`;
          throw new ParamsError(path, `unknown field \`${key}\`, ${expected}`);
        }
      }
      const out = {};
      for (const key of keys) {
        const schema = shape[key];
        if (value[key] !== undefined) {
          out[key] = schema.parse(value[key], [...path, key]);
        } else if (schema.hasDefault) {
          out[key] = schema.defaultValue();
        } else if (!schema.isOptional) {
          throw new ParamsError(path, `missing field \`${key}\``);
        }
      }
      return out;
    },
    options,
  );
}

function assertSchema(value, where) {
  if (!(value instanceof Schema)) {
    throw new TypeError(`${where} takes a schema built with p.*, got ${typeName(value)}`);
  }
}

/** The params schema builder. */
export const p = Object.freeze({
  string,
  integer,
  number,
  boolean,
  enum: enumOf,
  any,
  array,
  record,
  object,
});

/** The params of an operator that declares none: any object, passed as it is. */
export const ANY_OBJECT = new Schema({ type: 'object' }, (value, path) => {
  expectType(value, path, 'object');
  return value;
});
