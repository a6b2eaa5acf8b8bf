// Builds the engine's output records with V8's fast object layout.
//
// Why: a record has 30-40 fields whose names come from the documents, so it
// is built name by name at run time, and V8 turns an object grown that way
// past about 26 properties into a hash table: ~4.7 KB allocated per record
// instead of ~400 bytes, every one of them copied by the garbage collector
// while a sink still holds it (the engine benchmark spent about half its time
// in the collector). Records of one kind of traffic have the same field names
// in the same order, so for each such sequence (a "shape") a constructor made
// of one object literal is compiled once, as fastify's serializers
// (fast-json-stringify) compile one per schema, and the shape's records are
// made by it.
//
// What must stay true:
//  - A record has exactly the own fields, field order and values that the
//    same add() calls on a plain object would give (a name added twice keeps
//    its first place and its last value), whichever path built it; a field
//    named `__proto__` is an own field like any other (assigning it would set
//    the object's prototype and lose the field).
//  - Field names are data from log documents: a compiled literal quotes them
//    as JSON strings (valid JavaScript string literals), never as code.
//  - Memory is bounded whatever names arrive (random or huge field names
//    from a hostile client): a name longer than MAX_NAME_LENGTH is never
//    remembered (its record is built the slow way), and past MAX_NODES
//    prefixes or MAX_SHAPES compiled shapes everything is forgotten and
//    learnt again. Where code cannot be generated (node
//    --disallow-code-generation-from-strings) every record is built the
//    slow way.

type Maker = (values: readonly unknown[]) => Record<string, unknown>;

/** Shapes compiled at most (each a small function). */
const MAX_SHAPES = 256;
/** Name prefixes remembered at most (a few dozen bytes each). */
const MAX_NODES = 20_000;
/** A shape is compiled when seen this often: a one-off is cheaper built the slow way. */
const COMPILE_AT = 3;
/** Longer names are not remembered: 20,000 names of a megabyte each would be 20 GB. */
const MAX_NAME_LENGTH = 128;

/** One prefix of field names: the names that followed it, and the constructor of records that end here. */
class ShapeNode {
  next: Map<string, ShapeNode> | null = null;
  make: Maker | null = null;
  seen = 0;
}

export class RecordBuilder {
  private root = new ShapeNode();
  /** Where the record being built is in the tree of prefixes; null once it left what is remembered. */
  private node: ShapeNode | null = this.root;
  private readonly names: string[] = [];
  private readonly values: unknown[] = [];
  private n = 0;
  private nodes = 1;
  private shapes = 0;
  /** False once the runtime refused to compile: nothing is compiled any more. */
  private compiling = true;

  /** Starts a record (the previous one must have been finished). */
  begin(): void {
    this.node = this.root;
    this.n = 0;
  }

  add(name: string, value: unknown): void {
    this.names[this.n] = name;
    this.values[this.n] = value;
    this.n += 1;
    if (this.node !== null) this.node = this.child(this.node, name);
  }

  /** The record of the fields added since begin(). */
  finish(): Record<string, unknown> {
    const node = this.node;
    let out: Record<string, unknown>;
    if (node !== null && (node.make !== null || this.compiles(node))) out = node.make!(this.values);
    else out = this.slow();
    // Not kept alive by the scratch arrays until the next record.
    for (let i = 0; i < this.n; i++) {
      this.values[i] = undefined;
      this.names[i] = '';
    }
    return out;
  }

  /** Shapes compiled so far (for tests). */
  get compiled(): number {
    return this.shapes;
  }

  /** Name prefixes remembered (for tests). */
  get prefixes(): number {
    return this.nodes;
  }

  private child(node: ShapeNode, name: string): ShapeNode | null {
    const known = node.next?.get(name);
    if (known !== undefined) return known;
    if (name.length > MAX_NAME_LENGTH || !this.compiling) return null;
    if (this.nodes >= MAX_NODES) {
      this.forget();
      return null;
    }
    const created = new ShapeNode();
    (node.next ??= new Map()).set(name, created);
    this.nodes += 1;
    return created;
  }

  private compiles(node: ShapeNode): boolean {
    node.seen += 1;
    if (node.seen < COMPILE_AT) return false;
    if (this.shapes >= MAX_SHAPES) {
      this.forget();
      return false;
    }
    const names = this.names.slice(0, this.n);
    if (names.includes('__proto__')) return false;
    try {
      node.make = compile(names);
    } catch {
      // EvalError: code generation from strings is disallowed here.
      this.compiling = false;
      this.forget();
      return false;
    }
    this.shapes += 1;
    return true;
  }

  /** Every prefix and shape forgotten (the shapes in use are learnt again). The record being built goes the slow way. */
  private forget(): void {
    this.root = new ShapeNode();
    this.node = null;
    this.nodes = 1;
    this.shapes = 0;
  }

  private slow(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (let i = 0; i < this.n; i++) {
      const name = this.names[i]!;
      if (name === '__proto__') Object.defineProperty(out, name, { value: this.values[i], enumerable: true, writable: true, configurable: true });
      else out[name] = this.values[i];
    }
    return out;
  }
}

/** `v => ({"name0": v[0], "name1": v[1], ...})`: a duplicate name keeps its first place and its last value, as assignments do. */
function compile(names: readonly string[]): Maker {
  const fields = names.map((name, i) => `${JSON.stringify(name)}: v[${i}]`);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the names are quoted as JSON strings, never code (see the header)
  return new Function('v', `'use strict'; return { ${fields.join(', ')} };`) as Maker;
}
