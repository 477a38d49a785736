export const testIds = {
  app: {
    root: 'vigil-app-root',
  },
};
