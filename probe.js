const { create, globals } = require('webgpu');
Object.assign(globalThis, globals);
(async () => {
  for (const flags of [['adapter=nonexistent'], ['backend=bogus'], ['backend=vulkan']]) {
    try { const g = create(flags); const a = await g.requestAdapter(); console.log(flags, a && a.info.description); }
    catch (e) { console.log(flags, 'ERR', e.message); }
  }
})();
