// Checked by `tsc --noEmit` (npm run typecheck), never run: the types a
// TypeScript author gets. Each `@ts-expect-error` is a mistake the types must catch.

import { Branch, Failed, Fatal, Reschedule, Skip, SkipDownstream, operator, p, type Infer } from 'aileron-sdk';
import { TestHost, type RunResult } from 'aileron-sdk/testing';

const params = p.object({
  message: p.string({ description: 'What to say.' }),
  count: p.integer({ default: 1, minimum: 0 }),
  tags: p.array(p.string()).optional(),
  mode: p.enum(['fast', 'safe']),
  inner: p.object({ on: p.boolean() }).optional(),
  labels: p.record(p.number()),
});

// The inferred params type: defaults make a key present, `.optional()` makes it `?`.
type Params = Infer<typeof params>;
const sample: Params = { message: 'hi', count: 1, mode: 'fast', labels: {} };
const withOptional: Params = { ...sample, tags: ['a'], inner: { on: true } };
// @ts-expect-error `count` has a default, so it is always present
const missingCount: Params = { message: 'hi', mode: 'fast', labels: {} };
// @ts-expect-error `mode` is one of the enum's values
const wrongMode: Params = { ...sample, mode: 'slow' };

export default operator({ name: 'typed', version: '0.1.0', params }, async (ctx, params) => {
  const message: string = params.message;
  const count: number = params.count;
  // @ts-expect-error an optional param may be undefined
  const tags: string[] = params.tags;
  const first: string | undefined = params.tags?.[0];
  const on: boolean | undefined = params.inner?.on;
  // @ts-expect-error no such param
  params.mesage;

  ctx.info(`${message} x${count} ${first} ${on}`);
  // @ts-expect-error not a level
  ctx.log('fatal', 'x');
  ctx.xcomPush('seen', { count });
  const upstream = ctx.xcomPull<{ rows: number }>('extract');
  const rows: number | undefined = upstream?.rows;
  const region: string | undefined = ctx.variable('region');
  const conn = ctx.connection('crm');
  const password: string | null = conn.password;
  const response = await ctx.httpWithConnection('crm', { method: 'POST', url: '/v1/items', json: { rows } });
  const body = response.json<{ id: string }>();
  const fetched = await ctx.http(`https://api.example.com/${region}`);
  const raw: Response = await ctx.fetch('https://api.example.com/');

  if (!fetched.ok) throw new Failed('not yet', { cause: raw.status });
  if (password === null && params.mode === 'safe') throw new Fatal('needs a password');
  if (count === 0) return new Skip('nothing to do');
  if (count === 1) return new Branch(['a', 'b']);
  if (count === 2) return new Reschedule(30);
  if (count === 3) return new SkipDownstream({ all: true });
  return { id: body.id, task: ctx.task.taskId, try: ctx.task.tryNumber };
});

// Without a params schema, params are any object.
export const untyped = operator({ name: 'untyped', version: '0.1.0' }, (_ctx, params) => {
  const value: unknown = params['anything'];
  return value;
});

// @ts-expect-error the function takes the context first, then params
operator({ name: 'wrong', version: '0.1.0', params }, (params: Params, ctx: unknown) => undefined);

// @ts-expect-error a name and a version are required
operator({ name: 'noversion' }, () => undefined);

export async function testIt(): Promise<RunResult> {
  const host = new TestHost({
    variables: { region: 'eu' },
    connections: { crm: { conn_type: 'http', host: 'crm.example.com', password: 's3cret' } },
    xcoms: { extract: { return_value: { rows: 3 } } },
    http: { crm: (request) => ({ status: 201, json: { id: request.url } }) },
    fetch: () => new Response('{}'),
    allowHosts: ['api.example.com'],
  });
  const result = await host.run(
    operator({ name: 'typed', version: '0.1.0', params }, () => undefined),
    { message: 'hi', mode: 'fast', labels: {} },
  );
  if (result.status === 'failed') {
    const reason: string = result.reason;
  }
  const lines: string[] = host.logs.map((line) => `${line.level} ${line.message}`);
  return result;
}

void sample;
void withOptional;
void missingCount;
void wrongMode;
