// text_output.h - mlinkctl's answers as text for people (`-j` prints the
// JSON instead); the layouts are shown in docs/OPERATIONS.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace mlinkctl {

std::string join(const nlohmann::json& arr);  // "a, b" of an array of strings
void print_maps(const nlohmann::json& entries);
void print_drops(const nlohmann::json& drops);
void print_node(const nlohmann::json& n);
void print_peers(const nlohmann::json& peers);
void print_links(const nlohmann::json& links);
void print_event(const nlohmann::json& e);  // one event of `monitor`, as a line
void print_flow(const nlohmann::json& f);

}  // namespace mlinkctl
