// js_greet: greets the name an upstream task returned, pushes the name it
// greeted as the `greeted` XCom, and returns the greeting.

import { Fatal, operator, p } from 'aileron-sdk';

export default operator(
  {
    name: 'js_greet',
    version: '0.1.0',
    description: 'Greets the name an upstream task returned and returns the greeting.',
    params: p.object({
      upstream: p.string({ description: 'The task whose return value is the name to greet.' }),
      greeting: p.string({ description: 'What to say before the name.', default: 'Hello', minLength: 1 }),
      times: p.integer({ description: 'How many times to say it.', default: 1, minimum: 1, maximum: 5 }),
    }),
  },
  async (ctx, params) => {
    const name = ctx.xcomPull(params.upstream);
    if (typeof name !== 'string') {
      // The same upstream value would fail the same way on a retry.
      throw new Fatal(`task \`${params.upstream}\` returned ${JSON.stringify(name) ?? 'nothing'}, not a name`);
    }
    const greeting = Array.from({ length: params.times }, () => `${params.greeting}, ${name}!`).join(' ');
    ctx.info(greeting);
    ctx.xcomPush('greeted', name);
    return greeting;
  },
);
