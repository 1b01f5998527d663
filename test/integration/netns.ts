// The namespace topology lives with the demo, which uses it too (ts/demo/netns.ts).
export * from '../../ts/demo/netns';
