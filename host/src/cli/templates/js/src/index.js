// {{name}}: an Aileron operator that greets someone. It logs the greeting,
// shares the name as the `name` XCom and returns the greeting, which becomes
// the task's `return_value` XCom.

import { operator, p } from 'aileron-sdk';

export default operator(
  {
    name: '{{name}}',
    version: '0.1.0',
    description: 'Greets `name` and returns the greeting.',
    params: p.object({
      name: p.string({ description: 'Who to greet.', minLength: 1 }),
    }),
  },
  async (ctx, params) => {
    const greeting = `Hello, ${params.name}!`;
    ctx.info(greeting);
    ctx.xcomPush('name', params.name);
    return greeting;
  },
);
