FROM node:20-bookworm-slim AS base
MAINTAINER Old Style <old@example.com>
ARG NODE_ENV=production
ENV NODE_ENV=${NODE_ENV}
WORKDIR /usr/src/app

# Triggers for images built FROM this one.
ONBUILD COPY package*.json ./
ONBUILD RUN npm ci --omit=dev
ONBUILD COPY . .

EXPOSE 3000 9229/tcp
HEALTHCHECK NONE
  # An indented comment.
CMD node server.js
